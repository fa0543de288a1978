//! Which location store keeps the bindings: the value of `--location` (config key
//! `location`), read and checked once at start by `config.rs`, used by
//! [`super::start_registrar`].
//!
//! - `redb:DIR`: the embedded file in DIR (the default, `dialtone-data`; what `--data-dir DIR`
//!   gives), for a proxy alone.
//! - `redis://HOST:PORT[/DB]`, `rediss://...` (TLS): one Redis server, which several proxies
//!   share (see `redis_store.rs`).
//! - `redis+cluster://HOST:PORT,HOST:PORT` (`rediss+cluster://` with TLS), or a comma-separated
//!   list of `redis://` URLs: a Redis Cluster, starting from those nodes.
//! - memory only (`--memory-only`), which has no `location` form.

use std::path::PathBuf;

use redis::IntoConnectionInfo;

use super::journal_file::JournalSync;

/// Where the bindings are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationChoice {
    /// Nowhere: none survive a restart.
    Memory,
    /// The redb file in this directory.
    Redb(PathBuf),
    /// Redis, shared with the other proxies that name it.
    Redis(RedisTarget),
}

/// Where registrations persist when neither `data-dir` nor `memory-only` is given: bindings
/// survive a restart by default (relative to the working directory, like Prometheus' `data/`).
pub const DEFAULT_DATA_DIR: &str = "dialtone-data";

impl LocationChoice {
    /// The store the settings `memory-only`, `data-dir` and `location` name, which exclude
    /// each other; an error names the setting at fault and why.
    pub fn from_settings(
        memory_only: bool,
        data_dir: Option<PathBuf>,
        location: Option<String>,
    ) -> Result<LocationChoice, (&'static str, String)> {
        let refused = |key, reason: &str| Err((key, reason.to_string()));
        match (memory_only, data_dir, location) {
            (true, Some(_), _) => refused("data-dir", "cannot be given together with memory-only"),
            (true, None, Some(_)) => {
                refused("location", "cannot be given together with memory-only")
            }
            (false, Some(_), Some(_)) => refused(
                "location",
                "cannot be given together with data-dir (use location = redb:DIR)",
            ),
            (true, None, None) => Ok(LocationChoice::Memory),
            (false, Some(dir), None) => Ok(LocationChoice::Redb(dir)),
            (false, None, Some(raw)) => raw.parse().map_err(|e| ("location", e)),
            (false, None, None) => Ok(LocationChoice::Redb(PathBuf::from(DEFAULT_DATA_DIR))),
        }
    }

    /// The setting `journal-sync` (`raw`, when given) for this store: only redb has a journal.
    pub fn journal_sync(&self, raw: Option<String>) -> Result<JournalSync, String> {
        let Some(raw) = raw else {
            return Ok(JournalSync::default());
        };
        if !matches!(self, LocationChoice::Redb(_)) {
            return Err(
                "applies only to registrations kept in redb (data-dir or location = redb:DIR)"
                    .into(),
            );
        }
        raw.parse()
    }
}

/// A Redis server or cluster, as `--location` named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// Connection URLs (`redis://` or `rediss://`), one per node given.
    pub nodes: Vec<String>,
    /// A Redis Cluster (`redis+cluster://` or several nodes).
    pub cluster: bool,
}

impl RedisTarget {
    /// The target as logs and `/readyz` name it, without any password.
    pub fn display(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| without_password(n)).collect();
        let kind = if self.cluster { "cluster " } else { "" };
        format!("redis {kind}{}", nodes.join(","))
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        },
        None => url.to_owned(),
    }
}

impl std::str::FromStr for LocationChoice {
    type Err = String;

    fn from_str(raw: &str) -> Result<LocationChoice, String> {
        if let Some(dir) = raw.strip_prefix("redb:") {
            if dir.is_empty() {
                return Err("`redb:` needs a directory, e.g. redb:/var/lib/dialtone".into());
            }
            return Ok(LocationChoice::Redb(PathBuf::from(dir)));
        }
        let (nodes, cluster) = if let Some(hosts) = raw.strip_prefix("redis+cluster://") {
            (with_scheme("redis", hosts), true)
        } else if let Some(hosts) = raw.strip_prefix("rediss+cluster://") {
            (with_scheme("rediss", hosts), true)
        } else if raw.starts_with("redis://") || raw.starts_with("rediss://") {
            let nodes: Vec<String> = raw.split(',').map(|n| n.trim().to_owned()).collect();
            let cluster = nodes.len() > 1;
            (nodes, cluster)
        } else {
            return Err(format!(
                "`{raw}` is not redb:DIR, redis://HOST:PORT[/DB], rediss://..., \
                 redis+cluster://HOST:PORT,... or a list of redis:// URLs"
            ));
        };
        for node in &nodes {
            let info = node
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("`{}`: {e}", without_password(node)))?;
            if cluster && info.redis.db != 0 {
                return Err(format!(
                    "`{}`: a Redis Cluster has database 0 only",
                    without_password(node)
                ));
            }
        }
        Ok(LocationChoice::Redis(RedisTarget { nodes, cluster }))
    }
}

/// `a:1,b:2` → `scheme://a:1`, `scheme://b:2`.
fn with_scheme(scheme: &str, hosts: &str) -> Vec<String> {
    hosts
        .split(',')
        .map(|host| format!("{scheme}://{}", host.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redb_and_redis_forms_parse() {
        assert_eq!(
            "redb:/var/lib/d".parse(),
            Ok(LocationChoice::Redb("/var/lib/d".into()))
        );
        assert_eq!(
            "redis://127.0.0.1:6379/2".parse(),
            Ok(LocationChoice::Redis(RedisTarget {
                nodes: vec!["redis://127.0.0.1:6379/2".into()],
                cluster: false,
            }))
        );
        assert_eq!(
            "rediss+cluster://a:7000,b:7001".parse(),
            Ok(LocationChoice::Redis(RedisTarget {
                nodes: vec!["rediss://a:7000".into(), "rediss://b:7001".into()],
                cluster: true,
            }))
        );
        let list: LocationChoice = "redis://a:7000,redis://b:7001".parse().unwrap();
        assert!(matches!(
            list,
            LocationChoice::Redis(RedisTarget { cluster: true, .. })
        ));
    }

    #[test]
    fn bad_forms_say_what_is_expected() {
        for raw in ["redb:", "mysql://x", "/var/lib", "redis+cluster://a:1/3"] {
            let error = raw.parse::<LocationChoice>().unwrap_err();
            assert!(!error.is_empty(), "{raw}");
        }
        let error = "postgres://x".parse::<LocationChoice>().unwrap_err();
        assert!(error.contains("redis://HOST:PORT"), "{error}");
    }

    #[test]
    fn the_display_form_hides_the_password() {
        let LocationChoice::Redis(target) = "rediss://u:secret@h:6380".parse().unwrap() else {
            panic!()
        };
        assert_eq!(target.display(), "redis rediss://u:***@h:6380");
    }
}
