//! What one node's authenticator learns that every node of a cluster must know, so that the
//! security rules hold across nodes (issue 21, "shared security state"): a failed answer
//! (counted towards the lockout of its source and its user) and a nonce count that was used
//! (so the same credentials replayed to another node are refused).
//!
//! Pure: [`AuthEvent`] and its one-line text form, which the cluster's link (Redis pub/sub)
//! carries between nodes. The authenticator (`auth.rs`) emits events and applies the other
//! nodes' events to its own tables with [`crate::auth::Authenticator::apply_remote`].

/// One thing an authenticator learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    /// A wrong answer counted against `key` (`ip:ADDR` or `user:NAME`) at `at_unix_secs`.
    Failure {
        /// The throttle key.
        key: String,
        /// When.
        at_unix_secs: u64,
    },
    /// Count `nc` of `nonce` was used by the request with fingerprint `request`.
    NonceUsed {
        /// The nonce as issued.
        nonce: String,
        /// The count (1 for an answer without qop).
        nc: u32,
        /// The fingerprint of the request that used it (its retransmission is not a replay).
        request: u64,
        /// When.
        at_unix_secs: u64,
    },
}

impl AuthEvent {
    /// The event as one line: `F <secs> <key>` or `N <secs> <nc> <request> <nonce>`. Keys and
    /// nonces hold no spaces (`ip:`/`user:` keys are built from a SIP user part, which cannot
    /// hold one unescaped; nonces are base64).
    pub fn encode(&self) -> String {
        match self {
            AuthEvent::Failure { key, at_unix_secs } => format!("F {at_unix_secs} {key}"),
            AuthEvent::NonceUsed {
                nonce,
                nc,
                request,
                at_unix_secs,
            } => format!("N {at_unix_secs} {nc} {request} {nonce}"),
        }
    }

    /// Reads [`AuthEvent::encode`]'s form back; `None` for anything else.
    pub fn decode(line: &str) -> Option<AuthEvent> {
        let mut parts = line.splitn(5, ' ');
        match parts.next()? {
            "F" => {
                let at_unix_secs = parts.next()?.parse().ok()?;
                let key = parts.next()?.to_owned();
                (!key.is_empty() && parts.next().is_none())
                    .then_some(AuthEvent::Failure { key, at_unix_secs })
            }
            "N" => {
                let at_unix_secs = parts.next()?.parse().ok()?;
                let nc = parts.next()?.parse().ok()?;
                let request = parts.next()?.parse().ok()?;
                let nonce = parts.next()?.to_owned();
                (!nonce.is_empty() && !nonce.contains(' ')).then_some(AuthEvent::NonceUsed {
                    nonce,
                    nc,
                    request,
                    at_unix_secs,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_their_text_form() {
        let events = [
            AuthEvent::Failure {
                key: "user:8000".into(),
                at_unix_secs: 1_700_000_000,
            },
            AuthEvent::NonceUsed {
                nonce: "AAECAwQ=+/".into(),
                nc: 3,
                request: u64::MAX,
                at_unix_secs: 5,
            },
        ];
        for event in events {
            assert_eq!(AuthEvent::decode(&event.encode()), Some(event));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for line in ["", "X 1 k", "F x k", "F 1", "N 1 2 3", "N 1 x 3 n", "F 1 "] {
            assert_eq!(AuthEvent::decode(line), None, "{line:?}");
        }
    }
}
