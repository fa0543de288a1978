//! The lab description (`deploy/lab.toml`): one proxy (`[proxy]`) or several sharing a
//! Redis server (`[[proxy]]` tables and a `[redis]` table, `deploy/lab-cluster.toml`), and any
//! number of ATAs, each with its addresses, lines, audio and the proxies it uses (primary
//! first, then backups). Validated once; errors name the key.

use serde::Deserialize;

/// One proxy of the lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// How ATAs name it (`proxies = ["node-a", "node-b"]`); default `proxy`, then `proxy-2`...
    #[serde(default)]
    pub name: Option<String>,
    pub listen: Vec<String>,
    pub http: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub data_dir: Option<String>,
}

fn default_auth() -> String {
    "none".into()
}

/// The lab's Redis server, which every proxy keeps its registrations in (`--location
/// redis://...`): Debian's `redis-server`, started by the lab on its own port and directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Where it keeps its append-only file; default a directory of its own under the temp dir.
    #[serde(default)]
    pub dir: Option<String>,
}

/// One ATA process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtaSpec {
    pub name: String,
    pub bind: String,
    pub control: String,
    #[serde(default)]
    pub rtp_ports: Option<String>,
    pub lines: Vec<String>,
    #[serde(default)]
    pub audio_in: Option<String>,
    #[serde(default)]
    pub audio_out: Option<String>,
    #[serde(default)]
    pub auto_answer: Option<f64>,
    /// The ATA's dial plan (`--dial-plan`): the lab's numbers complete as soon as they are
    /// dialled, with no interdigit wait.
    #[serde(default)]
    pub dial_plan: Option<String>,
    /// The proxies this ATA uses, by name, primary first (`--proxy` once each); default the
    /// lab's first proxy.
    #[serde(default)]
    pub proxies: Vec<String>,
}

/// A whole lab, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    /// `[proxy]` (one) or `[[proxy]]` (several), read in `Lab::parse` so that an error names
    /// the key it is about.
    proxy: toml::Value,
    #[serde(default)]
    redis: Option<RedisSpec>,
    #[serde(default)]
    ata: Vec<AtaSpec>,
}

/// A whole lab.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Its proxies, at least one; names filled in.
    pub proxies: Vec<ProxySpec>,
    /// The Redis server the proxies share, if several.
    pub redis: Option<RedisSpec>,
    pub ata: Vec<AtaSpec>,
}

/// The lab that `dialtone-lab` runs without `--lab`.
pub const DEFAULT_LAB: &str = include_str!("../lab.toml");

impl Lab {
    /// Parses and validates a lab file.
    pub fn parse(text: &str) -> Result<Lab, String> {
        let file: LabFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut proxies: Vec<ProxySpec> = match file.proxy {
            toml::Value::Array(_) => file.proxy.try_into(),
            one => one.try_into().map(|proxy| vec![proxy]),
        }
        .map_err(|e| format!("proxy: {e}"))?;
        if proxies.is_empty() {
            return Err("proxy: at least one".into());
        }
        if proxies.len() > 1 && file.redis.is_none() {
            return Err(
                "redis: several proxies share their registrations through a [redis] server".into(),
            );
        }
        for (i, proxy) in proxies.iter_mut().enumerate() {
            if proxy.listen.is_empty() {
                return Err("proxy.listen: at least one address".into());
            }
            if proxy.name.is_none() {
                proxy.name = Some(match i {
                    0 => "proxy".to_string(),
                    _ => format!("proxy-{}", i + 1),
                });
            }
        }
        let lab = Lab {
            proxies,
            redis: file.redis,
            ata: file.ata,
        };
        let mut names = std::collections::HashSet::new();
        for ata in &lab.ata {
            if !names.insert(&ata.name) {
                return Err(format!("ata.name: `{}` appears twice", ata.name));
            }
            if ata.lines.is_empty() {
                return Err(format!(
                    "ata `{}`.lines: at least one USER:PASSWORD",
                    ata.name
                ));
            }
            for line in &ata.lines {
                if !line.contains(':') {
                    return Err(format!(
                        "ata `{}`.lines: `{line}` is not USER:PASSWORD",
                        ata.name
                    ));
                }
            }
            for name in &ata.proxies {
                if lab.proxy_named(name).is_none() {
                    return Err(format!(
                        "ata `{}`.proxies: no proxy is named `{name}`",
                        ata.name
                    ));
                }
            }
        }
        Ok(lab)
    }

    /// The first proxy (the one a lab with one proxy has).
    pub fn proxy(&self) -> &ProxySpec {
        &self.proxies[0]
    }

    /// The proxy called `name`.
    pub fn proxy_named(&self, name: &str) -> Option<&ProxySpec> {
        self.proxies
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
    }

    /// The first proxy's SIP address for ATAs (`IP:PORT` of its first listen address).
    pub fn proxy_sip_address(&self) -> String {
        sip_address(self.proxy())
    }

    /// The flags that start the Redis server, keeping its data in `dir`.
    pub fn redis_args(redis: &RedisSpec, dir: &str) -> Vec<String> {
        [
            "--port",
            &redis.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir,
            // Every write on disk before Redis answers it (see the README on what survives
            // what): a lab's registration load is small.
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The flags that start the first proxy.
    pub fn proxy_args(&self) -> Vec<String> {
        self.proxy_args_of(self.proxy())
    }

    /// The flags that start proxy `p`.
    pub fn proxy_args_of(&self, p: &ProxySpec) -> Vec<String> {
        let mut args = Vec::new();
        for l in &p.listen {
            args.extend(["--listen".to_string(), l.clone()]);
        }
        args.extend(["--http".to_string(), p.http.clone()]);
        args.extend(["--auth".to_string(), p.auth.clone()]);
        args.extend(["--log".to_string(), "warn".to_string()]);
        if let Some(d) = &p.domain {
            args.extend(["--domain".to_string(), d.clone()]);
        }
        if let Some(r) = &p.realm {
            args.extend(["--realm".to_string(), r.clone()]);
        }
        for u in &p.users {
            args.extend(["--user".to_string(), u.clone()]);
        }
        match (&self.redis, &p.data_dir) {
            (Some(redis), _) => args.extend([
                "--location".to_string(),
                format!("redis://127.0.0.1:{}", redis.port),
            ]),
            (None, Some(d)) => args.extend(["--data-dir".to_string(), d.clone()]),
            // A lab without a data directory is throw-away, as lab.toml says.
            (None, None) => args.push("--memory-only".to_string()),
        }
        args
    }

    /// The flags that start one ATA.
    pub fn ata_args(&self, ata: &AtaSpec) -> Vec<String> {
        let mut args = Vec::new();
        let named: Vec<&ProxySpec> = ata
            .proxies
            .iter()
            .filter_map(|name| self.proxy_named(name))
            .collect();
        let proxies = if named.is_empty() {
            vec![self.proxy()]
        } else {
            named
        };
        for proxy in proxies {
            args.extend(["--proxy".to_string(), sip_address(proxy)]);
        }
        args.extend([
            "--bind".to_string(),
            ata.bind.clone(),
            "--control".to_string(),
            ata.control.clone(),
        ]);
        for l in &ata.lines {
            args.extend(["--line".to_string(), l.clone()]);
        }
        if let Some(r) = &ata.rtp_ports {
            args.extend(["--rtp-ports".to_string(), r.clone()]);
        }
        if let Some(a) = &ata.audio_in {
            args.extend(["--audio-in".to_string(), a.clone()]);
        }
        if let Some(a) = &ata.audio_out {
            args.extend(["--audio-out".to_string(), a.clone()]);
        }
        if let Some(s) = ata.auto_answer {
            args.extend(["--auto-answer".to_string(), s.to_string()]);
        }
        if let Some(plan) = &ata.dial_plan {
            args.extend(["--dial-plan".to_string(), plan.clone()]);
        }
        args
    }
}

/// A proxy's SIP address for ATAs (`IP:PORT` of its first listen address).
fn sip_address(proxy: &ProxySpec) -> String {
    proxy.listen[0]
        .split_once(':')
        .map(|(_, addr)| addr.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lab_has_a_proxy_with_auth_and_three_atas() {
        let lab = Lab::parse(DEFAULT_LAB).unwrap();
        assert_eq!(lab.proxy_sip_address(), "127.0.0.1:5060");
        assert_eq!(lab.proxy().auth, "all");
        assert_eq!(lab.ata.len(), 3);
        let users: Vec<_> = lab.ata.iter().flat_map(|a| a.lines.clone()).collect();
        assert_eq!(users, vec!["8000:8000", "9000:9000", "7000:7000"]);
        let args = lab.ata_args(&lab.ata[0]);
        assert!(args.windows(2).any(|w| w == ["--proxy", "127.0.0.1:5060"]));
        assert!(args.windows(2).any(|w| w == ["--dial-plan", "xxxx"]));
        assert!(lab
            .proxy_args()
            .windows(2)
            .any(|w| w == ["--user", "9000:9000"]));
    }

    #[test]
    fn bad_labs_name_the_key() {
        let err = Lab::parse("[proxy]\nlisten=[]\nhttp='x'\n").unwrap_err();
        assert!(err.contains("proxy.listen"), "{err}");
        let err = Lab::parse(
            "[proxy]\nlisten=['udp:127.0.0.1:5060']\nhttp='x'\n[[ata]]\nname='a'\nbind='b'\ncontrol='c'\nlines=['nopass']\n",
        )
        .unwrap_err();
        assert!(err.contains("lines"), "{err}");
        let two_without_redis = "[[proxy]]\nlisten=['udp:127.0.0.1:5060']\nhttp='x'\n\
             [[proxy]]\nlisten=['udp:127.0.0.1:5070']\nhttp='y'\n";
        let err = Lab::parse(two_without_redis).unwrap_err();
        assert!(err.contains("redis"), "{err}");
        assert!(Lab::parse("[proxy]\nlisten=['u']\nhttp='x'\nbogus=1\n")
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn the_cluster_lab_shares_one_redis_and_gives_each_ata_a_backup() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lab-cluster.toml"))
                .expect("deploy/lab-cluster.toml");
        let lab = Lab::parse(&text).unwrap();
        assert_eq!(lab.proxies.len(), 2);
        let redis = lab.redis.clone().expect("a [redis] table");
        for proxy in &lab.proxies {
            let args = lab.proxy_args_of(proxy);
            let location = format!("redis://127.0.0.1:{}", redis.port);
            assert!(
                args.windows(2)
                    .any(|w| w == ["--location", location.as_str()]),
                "{args:?}"
            );
        }
        assert_eq!(lab.ata.len(), 4);
        for ata in &lab.ata {
            let proxies: Vec<_> = lab
                .ata_args(ata)
                .windows(2)
                .filter(|w| w[0] == "--proxy")
                .map(|w| w[1].clone())
                .collect();
            assert_eq!(proxies.len(), 2, "{}: primary and backup", ata.name);
            assert_ne!(proxies[0], proxies[1]);
        }
    }
}
