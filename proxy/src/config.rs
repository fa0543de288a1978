//! The proxy's configuration: one typed struct, read from a TOML file and command-line flags
//! (flags win), validated once at start and passed down.
//!
//! Every key of the file has a flag of the same name (`listen` ↔ `--listen`). A bad value stops
//! start-up with an error that names the key and says what was wrong.

use dialtone_transaction::Transport;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::registrar::journal_file::JournalSync;
use crate::registrar::LocationChoice;
pub use crate::worker_cpus::WorkerCpus;
use serde::Deserialize;
use thiserror::Error;

/// A configuration error, naming the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A key's value is not acceptable.
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// One `--listen` value: `udp:IP:PORT` or `tcp:IP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// UDP or TCP.
    pub transport: Transport,
    /// The local address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, addr) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not udp:IP:PORT or tcp:IP:PORT"))?;
        // UnknownTransport says "unknown transport `x` (udp or tcp)".
        let transport: Transport = kind
            .to_ascii_lowercase()
            .parse()
            .map_err(|e: dialtone_transaction::UnknownTransport| e.to_string())?;
        let addr = addr
            .parse()
            .map_err(|e| format!("`{addr}` is not IP:PORT ({e})"))?;
        Ok(Listen { transport, addr })
    }
}

/// How the kernel spreads the datagrams of one UDP listen address over the workers' sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpBalance {
    /// Every datagram to the first worker while it alone keeps up, and each to a worker
    /// picked at random once the load needs more (`transport/balance.rs`): one worker woken
    /// instead of several costs a quarter less CPU per message at light and middling loads,
    /// and every core still serves a heavy one.
    Adaptive,
    /// Each datagram to a worker picked at random (a reuseport BPF program), as Kamailio's
    /// children share one socket: every worker stays busy and warm, and one peer that sends
    /// everything from one port (a trunk, SIPp) still gets every core. Datagrams of one peer
    /// may be handled out of their order of arrival, which UDP never promised.
    Datagram,
    /// Each peer (address and port) to one worker, by the kernel's hash: a peer's datagrams
    /// are handled in order, but one busy peer keeps one core, and a worker that only a quiet
    /// peer reaches answers it from cold caches.
    Flow,
}

/// Which requests are challenged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Nothing is challenged.
    None,
    /// REGISTER only.
    Register,
    /// REGISTER and out-of-dialog INVITE (and anything relayed to another domain).
    All,
}

/// The command-line flags; each mirrors a key of the TOML file.
#[derive(Debug, Clone, Default, Args)]
pub struct ProxyFlags {
    /// TOML configuration file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address, `udp:IP:PORT` or `tcp:IP:PORT` (repeatable).
    #[arg(long, value_name = "TRANSPORT:IP:PORT")]
    pub listen: Vec<String>,
    /// A domain the registrar serves (repeatable); the listen addresses always count as local.
    #[arg(long, value_name = "NAME")]
    pub domain: Vec<String>,
    /// Digest realm (default: the first domain, else the first listen IP).
    #[arg(long)]
    pub realm: Option<String>,
    /// none | register | all
    #[arg(long)]
    pub auth: Option<String>,
    /// 407 | 401: how REGISTER is challenged (INVITE always gets 407).
    #[arg(long)]
    pub challenge: Option<u16>,
    /// Offer qop="auth" in challenges (clients without qop, like the seed's ATA, still work).
    #[arg(long)]
    pub qop: Option<bool>,
    /// A user, `NAME:PASSWORD` (repeatable).
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub user: Vec<String>,
    /// A users file: lines `name;password` or `name;ha1:HEX`, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Admin HTTP address: /metrics, /livez, /readyz, /api/*.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<String>,
    /// Where registrations persist (default: `dialtone-data` in the working directory); the
    /// same as `--location redb:DIR`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The location store: `redb:DIR` (the default, `redb:dialtone-data`),
    /// `redis://HOST:PORT[/DB]` or `rediss://...` (one Redis shared by several proxies),
    /// `redis+cluster://HOST:PORT,...` or a list of redis:// URLs (a Redis Cluster).
    #[arg(long, value_name = "redb:DIR|redis://HOST:PORT[/DB]")]
    pub location: Option<String>,
    /// Keep registrations in memory only: none survive a restart (for benchmarks and
    /// throw-away test proxies).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub memory_only: Option<bool>,
    /// When a REGISTER's change reaches the disk (redb location only): `periodic` (the 200
    /// waits for the change to be written to the operating system, which a crash or kill -9
    /// of the proxy does not lose, and the disk has it within 100 ms; the default) or `each`
    /// (the 200 waits for the disk itself: a power cut loses nothing acknowledged either).
    #[arg(long, value_name = "periodic|each")]
    pub journal_sync: Option<String>,
    /// UDP worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Receive buffer asked of the kernel for each UDP worker socket, in bytes (default
    /// 262144; Linux caps it at `net.core.rmem_max`).
    #[arg(long, value_name = "BYTES")]
    pub udp_receive_buffer: Option<usize>,
    /// How UDP datagrams are spread over the workers: `adaptive` (all to one worker while it
    /// keeps up, each to a random worker under load; the default), `datagram` (each to a
    /// random worker) or `flow` (each peer to one worker, in order).
    #[arg(long, value_name = "adaptive|datagram|flow")]
    pub udp_balance: Option<String>,
    /// Which CPU each UDP worker runs on: `auto` (a CPU of its own each while the load is
    /// light, when there are as many CPUs as workers; the default), `off` (wherever the
    /// kernel puts them) or a list (always).
    #[arg(long, value_name = "auto|off|CPU,CPU…")]
    pub worker_cpus: Option<String>,
    /// Smallest registration interval accepted (423 below it).
    #[arg(long)]
    pub min_expires: Option<u32>,
    /// Largest registration interval granted.
    #[arg(long)]
    pub max_expires: Option<u32>,
    /// RFC 3261 T1 in milliseconds.
    #[arg(long)]
    pub t1_ms: Option<u64>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `dialtone_proxy=debug`.
    #[arg(long)]
    pub log: Option<String>,
    /// Calls (Call-IDs) whose messages are kept in memory for `ctl trace` and the admin page,
    /// and as many REGISTER/OPTIONS exchanges apart from them (default 200; 0 turns the
    /// recorder off).
    #[arg(long, value_name = "N")]
    pub trace_calls: Option<usize>,
    /// Send every message as HEPv3 to a collector, `udp:IP:PORT` (default: off).
    #[arg(long, value_name = "udp:IP:PORT")]
    pub hep: Option<String>,
    /// A DNS server for next hops in other domains, `IP` or `IP:PORT` (repeatable; default:
    /// the servers of /etc/resolv.conf).
    #[arg(long, value_name = "IP[:PORT]")]
    pub dns: Vec<String>,
    /// With `--auth none`: forward requests for domains this proxy does not serve (default
    /// false: `403 Relay forbidden`). With auth on, only authenticated requests are relayed.
    #[arg(long)]
    pub relay: Option<bool>,
    /// The Server header of the proxy's own responses (default `dialtone-proxy`, without a
    /// version, so that a scan does not learn it; an empty value sends none).
    #[arg(long, value_name = "TEXT")]
    pub server_header: Option<String>,
    /// The host written in Via and Record-Route for a listen address, for a proxy behind NAT:
    /// `IP:PORT=HOST[:PORT]` (repeatable; the IP:PORT of a --listen address).
    #[arg(long, value_name = "IP:PORT=HOST[:PORT]")]
    pub advertise: Vec<String>,
    /// A name written in Record-Route (`<sip:NAME;lr>`) instead of this node's address, one
    /// that resolves (SRV, then A) to every node of a cluster: later requests of a dialog may
    /// then pass through any live node (default: off, the listen address).
    #[arg(long, value_name = "NAME")]
    pub record_route_host: Option<String>,
}

pub use crate::registrar::choice::DEFAULT_DATA_DIR;

/// The UDP receive buffer asked per worker socket: what Kamailio asks for (its `maxbuffer`,
/// 256 KiB; Linux doubles it for bookkeeping). It holds a few hundred datagrams, which absorbs
/// the bursts of a busy lab. A deeper buffer does not raise the rate a proxy can sustain; under
/// overload it only turns loss into queueing delay: with 8 MiB, a proxy at its limit held
/// ~200 ms of REGISTERs in the queue (p50 2.6 ms, p99 15 ms for a probe at 26 000/s), against
/// 1 ms and 6 ms with this size (`../shared/bench`, register_auth at max rate).
pub const DEFAULT_UDP_RECEIVE_BUFFER: usize = 256 * 1024;

/// The TOML file: the same keys as the flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub domain: Option<Vec<String>>,
    pub realm: Option<String>,
    pub auth: Option<String>,
    pub challenge: Option<u16>,
    pub qop: Option<bool>,
    pub user: Option<Vec<String>>,
    pub users: Option<PathBuf>,
    pub http: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub location: Option<String>,
    pub memory_only: Option<bool>,
    pub journal_sync: Option<String>,
    pub workers: Option<usize>,
    pub udp_receive_buffer: Option<usize>,
    pub udp_balance: Option<String>,
    pub worker_cpus: Option<String>,
    pub min_expires: Option<u32>,
    pub max_expires: Option<u32>,
    pub t1_ms: Option<u64>,
    pub log: Option<String>,
    pub trace_calls: Option<usize>,
    pub hep: Option<String>,
    pub dns: Option<Vec<String>>,
    pub relay: Option<bool>,
    pub server_header: Option<String>,
    pub advertise: Option<Vec<String>>,
    pub record_route_host: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    pub domains: Vec<String>,
    pub realm: String,
    pub auth: AuthMode,
    pub register_challenge: u16,
    pub qop: bool,
    /// (name, secret) where secret is `password` or `ha1:HEX`.
    pub users: Vec<(String, String)>,
    pub http: SocketAddr,
    /// Where registrations are kept: redb (the default), Redis, or memory only.
    pub location: LocationChoice,
    /// When the redb store's journal reaches the disk.
    pub journal_sync: JournalSync,
    pub workers: usize,
    /// SO_RCVBUF asked for each UDP worker socket.
    pub udp_receive_buffer: usize,
    pub udp_balance: UdpBalance,
    pub worker_cpus: WorkerCpus,
    pub min_expires: u32,
    pub max_expires: u32,
    pub t1_ms: u64,
    pub log: String,
    /// Call-IDs kept by the message recorder; 0 = off.
    pub trace_calls: usize,
    /// The HEPv3 collector, if any.
    pub hep: Option<SocketAddr>,
    /// DNS servers to ask (RFC 3263 next hops); empty: the system's.
    pub dns: Vec<SocketAddr>,
    /// With `auth = none`: relay requests for other domains.
    pub relay: bool,
    /// The Server header of the proxy's responses; empty: none.
    pub server_header: String,
    /// `host[:port]` written in Via and Record-Route instead of a listen address.
    pub advertise: Vec<(SocketAddr, String)>,
    /// The cluster's name in Record-Route (`record-route-host`), taken as our own.
    pub record_route_host: Option<String>,
}

impl Config {
    /// Reads the file named by `--config` (if any), applies the flags on top, and validates.
    pub fn from_flags(flags: &ProxyFlags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(file, flags)
    }

    /// Merges a parsed file and flags (flags win) and validates the result.
    pub fn merge(file: FileConfig, flags: &ProxyFlags) -> Result<Config, ConfigError> {
        let pick_vec = |flag: &Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let listen_raw = pick_vec(&flags.listen, file.listen);
        let listen_raw = if listen_raw.is_empty() {
            vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5060".into()]
        } else {
            listen_raw
        };
        let listen = listen_raw
            .iter()
            .map(|l| l.parse::<Listen>().map_err(|e| invalid("listen", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let domains = pick_vec(&flags.domain, file.domain);
        for d in &domains {
            if d.is_empty() || d.contains(|c: char| c.is_whitespace() || c == '@') {
                return Err(invalid("domain", format!("`{d}` is not a domain name")));
            }
        }
        let realm = flags
            .realm
            .clone()
            .or(file.realm)
            .or_else(|| domains.first().cloned())
            .unwrap_or_else(|| listen[0].addr.ip().to_string());
        if realm.is_empty() || realm.contains('"') {
            return Err(invalid("realm", "must be non-empty and hold no quote"));
        }
        let auth = match flags
            .auth
            .clone()
            .or(file.auth)
            .unwrap_or_else(|| "none".into())
            .as_str()
        {
            "none" => AuthMode::None,
            "register" => AuthMode::Register,
            "all" => AuthMode::All,
            other => {
                return Err(invalid(
                    "auth",
                    format!("`{other}` is not none, register or all"),
                ))
            }
        };
        let register_challenge = flags.challenge.or(file.challenge).unwrap_or(407);
        if register_challenge != 407 && register_challenge != 401 {
            return Err(invalid("challenge", "must be 407 or 401"));
        }
        let mut users = Vec::new();
        for u in pick_vec(&flags.user, file.user) {
            let (name, password) = u
                .split_once(':')
                .ok_or_else(|| invalid("user", format!("`{u}` is not NAME:PASSWORD")))?;
            if name.is_empty() {
                return Err(invalid("user", "empty user name"));
            }
            users.push((name.to_string(), password.to_string()));
        }
        if let Some(path) = flags.users.clone().or(file.users) {
            users.extend(read_users_file(&path)?);
        }
        let http_raw = flags
            .http
            .clone()
            .or(file.http)
            .unwrap_or_else(|| "127.0.0.1:8060".into());
        let http = http_raw
            .parse()
            .map_err(|e| invalid("http", format!("`{http_raw}` is not IP:PORT ({e})")))?;
        let workers = flags
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if workers == 0 || workers > 64 {
            return Err(invalid("workers", "must be between 1 and 64"));
        }
        let udp_balance = match flags
            .udp_balance
            .clone()
            .or(file.udp_balance)
            .unwrap_or_else(|| "adaptive".into())
            .to_ascii_lowercase()
            .as_str()
        {
            "adaptive" => UdpBalance::Adaptive,
            "datagram" => UdpBalance::Datagram,
            "flow" => UdpBalance::Flow,
            other => {
                return Err(invalid(
                    "udp-balance",
                    format!("`{other}` is not adaptive, datagram or flow"),
                ))
            }
        };
        let worker_cpus = flags.worker_cpus.clone().or(file.worker_cpus);
        let worker_cpus = worker_cpus.map_or(Ok(WorkerCpus::Auto), |raw| {
            WorkerCpus::parse(&raw).map_err(|reason| invalid("worker-cpus", reason))
        })?;
        let udp_receive_buffer = flags
            .udp_receive_buffer
            .or(file.udp_receive_buffer)
            .unwrap_or(DEFAULT_UDP_RECEIVE_BUFFER);
        if !(16 * 1024..=256 * 1024 * 1024).contains(&udp_receive_buffer) {
            return Err(invalid(
                "udp-receive-buffer",
                "must be between 16384 and 268435456 bytes",
            ));
        }
        let min_expires = flags.min_expires.or(file.min_expires).unwrap_or(60);
        let max_expires = flags.max_expires.or(file.max_expires).unwrap_or(7200);
        if min_expires > max_expires {
            return Err(invalid("min-expires", "is larger than max-expires"));
        }
        let t1_ms = flags.t1_ms.or(file.t1_ms).unwrap_or(500);
        if !(10..=10_000).contains(&t1_ms) {
            return Err(invalid("t1-ms", "must be between 10 and 10000"));
        }
        let trace_calls = flags.trace_calls.or(file.trace_calls).unwrap_or(200);
        if trace_calls > 100_000 {
            return Err(invalid("trace-calls", "must be at most 100000"));
        }
        let location = LocationChoice::from_settings(
            flags.memory_only.or(file.memory_only).unwrap_or(false),
            flags.data_dir.clone().or(file.data_dir),
            flags.location.clone().or(file.location),
        )
        .map_err(|(key, reason)| invalid(key, reason))?;
        let journal_sync = location
            .journal_sync(flags.journal_sync.clone().or(file.journal_sync))
            .map_err(|reason| invalid("journal-sync", reason))?;
        let hep = match flags.hep.clone().or(file.hep) {
            None => None,
            Some(raw) => Some(parse_hep(&raw).map_err(|e| invalid("hep", e))?),
        };
        let dns = pick_vec(&flags.dns, file.dns)
            .iter()
            .map(|raw| parse_dns_server(raw).map_err(|e| invalid("dns", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let server_header = flags
            .server_header
            .clone()
            .or(file.server_header)
            .unwrap_or_else(|| "dialtone-proxy".into());
        if server_header.contains(['\r', '\n']) || server_header.trim() != server_header {
            return Err(invalid(
                "server-header",
                "must be one line without leading or trailing spaces",
            ));
        }
        let advertise = pick_vec(&flags.advertise, file.advertise)
            .iter()
            .map(|raw| parse_advertise(raw, &listen).map_err(|e| invalid("advertise", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let record_route_host = match flags.record_route_host.clone().or(file.record_route_host) {
            None => None,
            Some(raw) => {
                Some(parse_record_route_host(&raw).map_err(|e| invalid("record-route-host", e))?)
            }
        };
        Ok(Config {
            advertise,
            record_route_host,
            relay: flags.relay.or(file.relay).unwrap_or(false),
            server_header,
            dns,
            listen,
            domains,
            realm,
            auth,
            register_challenge,
            qop: flags.qop.or(file.qop).unwrap_or(false),
            users,
            http,
            location,
            journal_sync,
            workers,
            udp_receive_buffer,
            udp_balance,
            worker_cpus,
            min_expires,
            max_expires,
            t1_ms,
            log: flags
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            trace_calls,
            hep,
        })
    }
}

/// `udp:IP:PORT`, the only transport HEP export speaks.
fn parse_hep(raw: &str) -> Result<SocketAddr, String> {
    let addr = raw
        .strip_prefix("udp:")
        .ok_or_else(|| format!("`{raw}` is not udp:IP:PORT"))?;
    addr.parse()
        .map_err(|e| format!("`{addr}` is not IP:PORT ({e})"))
}

/// `IP:PORT=HOST[:PORT]`, where IP:PORT is one of the listen addresses.
fn parse_advertise(raw: &str, listen: &[Listen]) -> Result<(SocketAddr, String), String> {
    let (addr, host) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not IP:PORT=HOST[:PORT]"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("`{addr}` is not IP:PORT ({e})"))?;
    if !listen.iter().any(|l| l.addr == addr) {
        return Err(format!("`{addr}` is not one of the listen addresses"));
    }
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !valid {
        return Err(format!("`{host}` is not a host or host:port"));
    }
    Ok((addr, host.to_string()))
}

/// A DNS name (no port: SRV gives each node's) in lower case.
fn parse_record_route_host(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.');
    let valid = !name.is_empty()
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(format!("`{raw}` is not a DNS name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// `IP` (port 53) or `IP:PORT`; IPv6 with a port in brackets.
fn parse_dns_server(raw: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    raw.parse()
        .map_err(|_| format!("`{raw}` is not IP or IP:PORT"))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.into(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Reads `name;password` lines (`#` comments; fields after the second are ignored, as in the
/// bench's credentials file). A password written `ha1:HEX` is a precomputed MD5 HA1.
pub fn read_users_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("users", format!("{}: {e}", path.display())))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(';');
        let name = fields.next().unwrap_or("").trim();
        let secret = fields.next().map(str::trim);
        match secret {
            Some(secret) if !name.is_empty() => users.push((name.to_string(), secret.to_string())),
            _ => {
                return Err(invalid(
                    "users",
                    format!("{} line {}: expected name;password", path.display(), n + 1),
                ))
            }
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_5060_udp_and_tcp() {
        let c = Config::merge(FileConfig::default(), &ProxyFlags::default()).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[0].addr, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.listen[1].transport, Transport::Tcp);
        assert_eq!(c.auth, AuthMode::None);
        assert_eq!(c.register_challenge, 407);
        assert_eq!(c.realm, "127.0.0.1");
        assert_eq!(c.http, "127.0.0.1:8060".parse().unwrap());
        assert_eq!(
            c.location,
            LocationChoice::Redb(PathBuf::from(DEFAULT_DATA_DIR))
        );
        assert_eq!(c.udp_receive_buffer, DEFAULT_UDP_RECEIVE_BUFFER);
        assert_eq!(c.udp_balance, UdpBalance::Adaptive);
        assert_eq!(c.worker_cpus, WorkerCpus::Auto);
    }

    #[test]
    fn registrations_persist_unless_memory_only_and_the_two_exclude_each_other() {
        let file: FileConfig = toml::from_str("memory-only = true\n").unwrap();
        let c = Config::merge(file.clone(), &ProxyFlags::default()).unwrap();
        assert_eq!(c.location, LocationChoice::Memory);
        let flags = ProxyFlags {
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let error = Config::merge(file, &flags).unwrap_err().to_string();
        assert!(error.contains("data-dir"), "{error}");
        let flags = ProxyFlags {
            memory_only: Some(false),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let c = Config::merge(FileConfig::default(), &flags).unwrap();
        assert_eq!(c.location, LocationChoice::Redb(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn journal_sync_is_periodic_unless_each_is_asked_and_only_a_redb_store_takes_it() {
        let c = Config::merge(FileConfig::default(), &ProxyFlags::default()).unwrap();
        assert_eq!(c.journal_sync, JournalSync::Periodic);
        let file: FileConfig = toml::from_str("journal-sync = \"each\"\n").unwrap();
        let c = Config::merge(file, &ProxyFlags::default()).unwrap();
        assert_eq!(c.journal_sync, JournalSync::EachAppend);
        let flags = ProxyFlags {
            journal_sync: Some("Periodic".into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let c = Config::merge(FileConfig::default(), &flags).unwrap();
        assert_eq!(c.journal_sync, JournalSync::Periodic);
        for (file, wrong) in [
            (
                "journal-sync = \"always\"\n",
                "`always` is not periodic or each",
            ),
            (
                "journal-sync = \"each\"\nmemory-only = true\n",
                "applies only",
            ),
            (
                "journal-sync = \"each\"\nlocation = \"redis://127.0.0.1:6390\"\n",
                "applies only",
            ),
        ] {
            let file: FileConfig = toml::from_str(file).unwrap();
            let error = Config::merge(file, &ProxyFlags::default())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("journal-sync") && error.contains(wrong),
                "{error}"
            );
        }
    }

    #[test]
    fn location_names_redb_or_redis_and_excludes_data_dir_and_memory_only() {
        let file: FileConfig = toml::from_str("location = \"redis://127.0.0.1:6390/1\"\n").unwrap();
        let c = Config::merge(file.clone(), &ProxyFlags::default()).unwrap();
        assert!(
            matches!(&c.location, LocationChoice::Redis(t) if t.nodes == ["redis://127.0.0.1:6390/1"]),
            "{:?}",
            c.location
        );
        let flags = ProxyFlags {
            location: Some("redb:/tmp/y".into()),
            ..Default::default()
        };
        let c = Config::merge(FileConfig::default(), &flags).unwrap();
        assert_eq!(c.location, LocationChoice::Redb(PathBuf::from("/tmp/y")));
        for flags in [
            ProxyFlags {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            },
            ProxyFlags {
                memory_only: Some(true),
                ..Default::default()
            },
            ProxyFlags {
                location: Some("sqlite:x".into()),
                ..Default::default()
            },
        ] {
            let error = Config::merge(file.clone(), &flags).unwrap_err().to_string();
            assert!(error.contains("`location`"), "{error}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            "auth = \"register\"\ndomain = [\"lab.example\"]\nudp-receive-buffer = 1048576\nudp-balance = \"flow\"\n",
        )
        .unwrap();
        let flags = ProxyFlags {
            auth: Some("all".into()),
            ..Default::default()
        };
        let c = Config::merge(file, &flags).unwrap();
        assert_eq!(c.auth, AuthMode::All);
        assert_eq!(c.realm, "lab.example");
        assert_eq!(c.udp_receive_buffer, 1_048_576);
        assert_eq!(c.udp_balance, UdpBalance::Flow);
    }

    #[test]
    fn a_record_route_host_is_a_dns_name_in_lower_case_from_the_file_or_the_flag() {
        let file: FileConfig =
            toml::from_str("record-route-host = \"Lab-Proxies.test.\"\n").unwrap();
        let c = Config::merge(file, &ProxyFlags::default()).unwrap();
        assert_eq!(c.record_route_host.as_deref(), Some("lab-proxies.test"));
        for bad in ["10.0.0.1", "lab proxies", "", "a..b"] {
            let flags = ProxyFlags {
                record_route_host: Some(bad.into()),
                ..Default::default()
            };
            let error = Config::merge(FileConfig::default(), &flags)
                .unwrap_err()
                .to_string();
            assert!(error.contains("record-route-host"), "{bad}: {error}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                ProxyFlags {
                    listen: vec!["sctp:1.2.3.4:5".into()],
                    ..Default::default()
                },
                "listen",
            ),
            (
                ProxyFlags {
                    auth: Some("maybe".into()),
                    ..Default::default()
                },
                "auth",
            ),
            (
                ProxyFlags {
                    challenge: Some(403),
                    ..Default::default()
                },
                "challenge",
            ),
            (
                ProxyFlags {
                    user: vec!["nopassword".into()],
                    ..Default::default()
                },
                "user",
            ),
            (
                ProxyFlags {
                    http: Some("nowhere".into()),
                    ..Default::default()
                },
                "http",
            ),
            (
                ProxyFlags {
                    hep: Some("tcp:127.0.0.1:9060".into()),
                    ..Default::default()
                },
                "hep",
            ),
            (
                ProxyFlags {
                    udp_receive_buffer: Some(100),
                    ..Default::default()
                },
                "udp-receive-buffer",
            ),
            (
                ProxyFlags {
                    udp_balance: Some("round-robin".into()),
                    ..Default::default()
                },
                "udp-balance",
            ),
            (
                ProxyFlags {
                    worker_cpus: Some("0-3".into()),
                    ..Default::default()
                },
                "worker-cpus",
            ),
            (
                ProxyFlags {
                    dns: vec!["ns.example.com".into()],
                    ..Default::default()
                },
                "dns",
            ),
        ];
        for (flags, key) in cases {
            let err = Config::merge(FileConfig::default(), &flags).unwrap_err();
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn tracing_is_on_and_hep_off_by_default() {
        let c = Config::merge(FileConfig::default(), &ProxyFlags::default()).unwrap();
        assert_eq!(c.trace_calls, 200);
        assert_eq!(c.hep, None);
        let file: FileConfig =
            toml::from_str("trace-calls = 0\nhep = \"udp:127.0.0.1:9060\"\n").unwrap();
        let c = Config::merge(file, &ProxyFlags::default()).unwrap();
        assert_eq!(c.trace_calls, 0);
        assert_eq!(c.hep, Some("127.0.0.1:9060".parse().unwrap()));
        assert!(c.dns.is_empty(), "the system's servers by default");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = toml::from_str::<FileConfig>("listne = []").unwrap_err();
        assert!(err.to_string().contains("listne"));
    }

    #[test]
    fn users_file_accepts_the_bench_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(
            &path,
            "# comment\n8000;8000\n100000;pw100000;[authentication username=100000 password=pw100000]\n9000;ha1:0123\n",
        )
        .unwrap();
        let users = read_users_file(&path).unwrap();
        assert_eq!(users[0], ("8000".into(), "8000".into()));
        assert_eq!(users[1], ("100000".into(), "pw100000".into()));
        assert_eq!(users[2].1, "ha1:0123");
        std::fs::write(&path, "broken\n").unwrap();
        assert!(read_users_file(&path).is_err());
    }

    #[test]
    fn dns_servers_take_a_default_port_and_flags_win_over_the_file() {
        let file: FileConfig = toml::from_str("dns = [\"192.0.2.53\"]\n").unwrap();
        let c = Config::merge(file.clone(), &ProxyFlags::default()).unwrap();
        assert_eq!(c.dns, vec!["192.0.2.53:53".parse().unwrap()]);
        let flags = ProxyFlags {
            dns: vec!["127.0.0.1:5353".into(), "[::1]:53".into()],
            ..Default::default()
        };
        let c = Config::merge(file, &flags).unwrap();
        assert_eq!(
            c.dns,
            vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
