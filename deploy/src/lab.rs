//! The lab description (`deploy/lab.toml`): one proxy and any number of ATAs, each with its
//! addresses, lines and audio. Validated once; errors name the key.

use serde::Deserialize;

/// The proxy of the lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
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
}

/// A whole lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    pub proxy: ProxySpec,
    #[serde(default)]
    pub ata: Vec<AtaSpec>,
}

/// The lab that `dialtone-lab` runs without `--lab`.
pub const DEFAULT_LAB: &str = include_str!("../lab.toml");

impl Lab {
    /// Parses and validates a lab file.
    pub fn parse(text: &str) -> Result<Lab, String> {
        let lab: Lab = toml::from_str(text).map_err(|e| e.to_string())?;
        if lab.proxy.listen.is_empty() {
            return Err("proxy.listen: at least one address".into());
        }
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
        }
        Ok(lab)
    }

    /// The proxy's SIP address for ATAs (`IP:PORT` of the first listen address).
    pub fn proxy_sip_address(&self) -> String {
        self.proxy.listen[0]
            .split_once(':')
            .map(|(_, addr)| addr.to_string())
            .unwrap_or_default()
    }

    /// The flags that start the proxy.
    pub fn proxy_args(&self) -> Vec<String> {
        let p = &self.proxy;
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
        match &p.data_dir {
            Some(d) => args.extend(["--data-dir".to_string(), d.clone()]),
            // A lab without a data directory is throw-away, as lab.toml says.
            None => args.push("--memory-only".to_string()),
        }
        args
    }

    /// The flags that start one ATA.
    pub fn ata_args(&self, ata: &AtaSpec) -> Vec<String> {
        let mut args = vec![
            "--proxy".to_string(),
            self.proxy_sip_address(),
            "--bind".to_string(),
            ata.bind.clone(),
            "--control".to_string(),
            ata.control.clone(),
        ];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lab_has_a_proxy_with_auth_and_three_atas() {
        let lab = Lab::parse(DEFAULT_LAB).unwrap();
        assert_eq!(lab.proxy_sip_address(), "127.0.0.1:5060");
        assert_eq!(lab.proxy.auth, "all");
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
        assert!(Lab::parse("[proxy]\nlisten=['u']\nhttp='x'\nbogus=1\n")
            .unwrap_err()
            .contains("bogus"));
    }
}
