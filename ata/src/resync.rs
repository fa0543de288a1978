//! `check-sync` (the Cisco ATA's remote resync): a `NOTIFY` with `Event: check-sync` that the
//! endpoint answers 200 and hands here as [`CheckSync`] (defined beside its sender, the
//! endpoint). The [`Resync`] actor re-reads the
//! config file with the same flags laid over it (`Config::build`, so a bad file is refused
//! with its key named, and the running config kept), and makes every registering line
//! register again at once with its new password and `register_interval`
//! (`registration::actor::Resync`).
//!
//! What a running device cannot take without a restart (other lines or users, the proxy,
//! sockets, codecs) is logged, not applied.

use std::path::PathBuf;

use actix::prelude::*;
use tracing::{info, warn};

use crate::auth::DigestUser;
use crate::config::{Config, FileConfig, Overrides};
use crate::endpoint::CheckSync;
use crate::error::AtaError;
use crate::registration::actor::{self, RegistrationActor};

/// Where the config came from, to read it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The `--config` file, if any.
    pub path: Option<PathBuf>,
    /// The flags, laid over the file again.
    pub flags: Overrides,
}

/// The actor.
pub struct Resync {
    source: ConfigSource,
    config: Config,
    /// Per line index, its registration actor (lines that do not register have none).
    registrations: Vec<Option<Addr<RegistrationActor>>>,
}

impl Resync {
    /// A resync actor for a device started with `config` from `source`.
    pub fn new(
        source: ConfigSource,
        config: Config,
        registrations: Vec<Option<Addr<RegistrationActor>>>,
    ) -> Self {
        Resync {
            source,
            config,
            registrations,
        }
    }

    fn reload(&self) -> Result<Config, AtaError> {
        let file = match &self.source.path {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::build(file, self.source.flags.clone())
    }

    fn warn_about_restart_only_changes(&self, new: &Config) {
        let users = |c: &Config| c.lines.iter().map(|l| l.user.clone()).collect::<Vec<_>>();
        if users(new) != users(&self.config) {
            warn!("check-sync: the lines changed; restart the ATA to apply that");
        }
        if new.proxies != self.config.proxies || new.bind != self.config.bind {
            warn!("check-sync: proxy or bind changed; restart the ATA to apply that");
        }
    }
}

impl Actor for Resync {
    type Context = Context<Self>;
}

impl Handler<CheckSync> for Resync {
    type Result = ();

    fn handle(&mut self, _msg: CheckSync, _ctx: &mut Context<Self>) {
        match self.reload() {
            Ok(new) => {
                info!("check-sync: configuration re-read");
                self.warn_about_restart_only_changes(&new);
                // Lines keep their user: only a line whose user is unchanged takes the new
                // password.
                let same_users: Vec<bool> = self
                    .config
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, old)| new.lines.get(i).is_some_and(|l| l.user == old.user))
                    .collect();
                for (index, line) in new.lines.iter().enumerate() {
                    if same_users.get(index) == Some(&true) {
                        self.config.lines[index] = line.clone();
                    }
                }
                if new.register_interval > 0 {
                    self.config.register_interval = new.register_interval;
                } else {
                    warn!("check-sync: register_interval 0 needs a restart to stop registering");
                }
            }
            Err(e) => {
                warn!(error = %e, "check-sync: config refused; re-registering with the running one")
            }
        }
        for (line, registration) in self.config.lines.iter().zip(&self.registrations) {
            if let Some(registration) = registration {
                registration.do_send(actor::Resync {
                    expires: self.config.register_interval,
                    user: DigestUser {
                        username: line.auth_user().to_owned(),
                        password: line.password.clone(),
                    },
                });
            }
        }
    }
}
