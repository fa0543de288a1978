//! The proxy's one error type, [`ProxyError`]: what keeps it from starting or from saving
//! registrations. Its kinds are the error enums of the two modules that fail for reasons of
//! their own, the configuration ([`ConfigError`], which names the key) and the registrar's
//! store ([`StoreError`]), the voicemail counts the admin API sets ([`MailboxError`]), and the sockets and threads it could not have at start.
//! `dialtone-proxy` prints it as one line and exits non-zero (`cli.rs`).

use thiserror::Error;

use crate::config::ConfigError;
use crate::registrar::{MailboxError, StoreError};

/// See the module documentation.
#[derive(Debug, Error)]
pub enum ProxyError {
    /// A setting does not hold (the message names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registrations store could not be opened or read.
    #[error("opening the registrations store: {0}")]
    Store(#[from] StoreError),
    /// A socket could not be bound or set up; `what` says which, as the flag spells it.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Voicemail counts could not be set or read (the admin API answers 404 or 400 with it).
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    /// A UDP worker's thread could not be started.
    #[error("could not start udp worker {0}")]
    WorkerNotStarted(usize),
}

impl ProxyError {
    /// For `map_err`: an I/O failure of what `what` names.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProxyError {
        let what = what.into();
        move |source| ProxyError::Io { what, source }
    }
}
