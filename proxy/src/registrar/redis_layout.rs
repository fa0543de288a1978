//! How the Redis location store lays the registrar's state out in Redis, and the message the
//! nodes sharing one Redis tell each other a commit with. Pure: keys, values and the writes a
//! batch of [`BindingChange`]s becomes, as data; `redis_store.rs` turns them into one
//! pipeline and `redis_sync.rs` reads the messages. Kept apart so that the layout, which
//! every node of a cluster must agree on, is tested without a server.
//!
//! Per address-of-record `AOR` (the braces are a Redis Cluster hash tag: every key of one
//! AOR lives in one slot, so one AOR's writes go to one node):
//!
//! - `dialtone:{AOR}:b:IDENTITY`: the JSON of one [`Binding`], where IDENTITY is the
//!   contact's identity ([`super::binding::contact_identity`]). Written with `EXAT` the
//!   binding's `expires_at`, so Redis itself drops a lapsed binding (Redis 7.0 has no expiry
//!   per hash field, hence a key per binding).
//! - `dialtone:{AOR}:bindings`: the index, a sorted set of the AOR's identities scored by
//!   their `expires_at`; a reader takes the members not yet lapsed and fetches their keys.
//!   Lapsed members are trimmed at each write to the AOR, and the set itself expires with the
//!   last of its bindings.
//! - `dialtone:{AOR}:mailbox`: the voicemail counts ([`MessageCounts`]) as `NEW/OLD`; no
//!   expiry.
//!
//! An AOR is a SIP user part (RFC 3261 section 25.1), which holds no brace, so the hash tag
//! is always the whole AOR.

use serde::{Deserialize, Serialize};

use super::binding::{contact_identity, Binding, BindingChange};
use super::mailbox::MessageCounts;

/// The channel on which a node announces the AORs each of its commits changed.
pub const CHANNEL: &str = "dialtone:location";

/// `SCAN MATCH` pattern of every binding key (Redis globs treat braces as plain characters).
pub const BINDING_PATTERN: &str = "dialtone:{*}:b:*";

/// `SCAN MATCH` pattern of every mailbox key.
pub const MAILBOX_PATTERN: &str = "dialtone:{*}:mailbox";

/// The key of the binding of `aor` whose contact has identity `identity`.
pub fn binding_key(aor: &str, identity: &str) -> String {
    format!("dialtone:{{{aor}}}:b:{identity}")
}

/// The index of `aor`'s bindings.
pub fn index_key(aor: &str) -> String {
    format!("dialtone:{{{aor}}}:bindings")
}

/// The key of `aor`'s voicemail counts.
pub fn mailbox_key(aor: &str) -> String {
    format!("dialtone:{{{aor}}}:mailbox")
}

/// The AOR of a mailbox key found by `SCAN`, `None` for any other key.
pub fn aor_of_mailbox_key(key: &str) -> Option<&str> {
    key.strip_prefix("dialtone:{")?.strip_suffix("}:mailbox")
}

/// One write of a commit, in the order the pipeline sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `SET key value EXAT at`.
    SetExpiring { key: String, value: String, at: u64 },
    /// `SET key value`.
    Set { key: String, value: String },
    /// `DEL key`.
    Delete { key: String },
    /// `ZADD index score member`.
    Index {
        index: String,
        member: String,
        score: u64,
    },
    /// `ZREM index member`.
    Unindex { index: String, member: String },
    /// `ZREMRANGEBYSCORE index -inf before`: members lapsed by `before` (inclusive).
    TrimIndex { index: String, before: u64 },
    /// `EXPIREAT index at NX` then `EXPIREAT index at GT`: the index lives as long as its
    /// longest binding (a key without expiry counts as infinite for `GT`, hence `NX` first).
    ExpireIndexNoEarlierThan { index: String, at: u64 },
    /// `PUBLISH CHANNEL message`.
    Publish { message: String },
}

impl Write {
    /// The Redis Cluster hash tag of the key written (the AOR), `None` for the announcement,
    /// which has no key: writes with one tag may share a pipeline on a cluster.
    pub fn hash_tag(&self) -> Option<&str> {
        let key = match self {
            Write::SetExpiring { key, .. } | Write::Set { key, .. } | Write::Delete { key } => key,
            Write::Index { index, .. }
            | Write::Unindex { index, .. }
            | Write::TrimIndex { index, .. }
            | Write::ExpireIndexNoEarlierThan { index, .. } => index,
            Write::Publish { .. } => return None,
        };
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')?;
        Some(&key[open + 1..open + 1 + close])
    }
}

/// The writes of `changes` at `now` (Unix seconds), in order, followed by the message that
/// tells the other nodes which AORs changed (`node`, `at_micros`: see [`SyncMessage`]).
/// Errors only when a binding cannot be encoded, which a `Binding` always can.
pub fn writes_for(
    changes: &[BindingChange],
    now: u64,
    node: &str,
    at_micros: u64,
) -> Result<Vec<Write>, serde_json::Error> {
    let mut writes = Vec::with_capacity(changes.len() * 4 + 1);
    let mut aors: Vec<&str> = Vec::new();
    for change in changes {
        match change {
            BindingChange::Upsert(binding) => {
                let identity = binding.identity();
                let index = index_key(&binding.aor);
                writes.push(Write::SetExpiring {
                    key: binding_key(&binding.aor, &identity),
                    value: serde_json::to_string(binding)?,
                    // EXAT 0 is refused by Redis; a binding lapsed already is dropped at once.
                    at: binding.expires_at.max(1),
                });
                writes.push(Write::TrimIndex {
                    index: index.clone(),
                    before: now,
                });
                writes.push(Write::Index {
                    index: index.clone(),
                    member: identity,
                    score: binding.expires_at,
                });
                writes.push(Write::ExpireIndexNoEarlierThan {
                    index,
                    at: binding.expires_at.max(1),
                });
                aors.push(&binding.aor);
            }
            BindingChange::Remove { aor, contact } => {
                let identity = contact_identity(contact);
                writes.push(Write::Delete {
                    key: binding_key(aor, &identity),
                });
                writes.push(Write::Unindex {
                    index: index_key(aor),
                    member: identity,
                });
                aors.push(aor);
            }
            BindingChange::Mailbox { aor, counts } => {
                writes.push(Write::Set {
                    key: mailbox_key(aor),
                    value: counts.to_string(),
                });
            }
        }
    }
    aors.sort_unstable();
    aors.dedup();
    if !aors.is_empty() {
        let message = SyncMessage {
            node: node.to_owned(),
            at_micros,
            aors: aors.into_iter().map(str::to_owned).collect(),
        };
        writes.push(Write::Publish {
            message: message.encode(),
        });
    }
    Ok(writes)
}

/// What a node publishes on [`CHANNEL`] with each commit that changed bindings: who wrote,
/// when (the wall clock when the batch went to Redis, in microseconds since the Unix epoch,
/// so that the reader can tell how long the change took to reach it), and which AORs. The
/// readers fetch those AORs' bindings from Redis rather than trusting the message for them,
/// so that whatever order two nodes' messages arrive in, the last fetch sees the last write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    pub node: String,
    pub at_micros: u64,
    pub aors: Vec<String>,
}

impl SyncMessage {
    /// The JSON published.
    pub fn encode(&self) -> String {
        // A struct of strings and numbers always encodes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a published message; `None` for anything else on the channel.
    pub fn decode(payload: &[u8]) -> Option<SyncMessage> {
        serde_json::from_slice(payload).ok()
    }
}

/// A stored binding's JSON, `None` (with a warning) when it does not decode: a value written
/// by a different version is skipped, and its phone registers again.
pub fn decode_binding(key: &str, value: &[u8]) -> Option<Binding> {
    match serde_json::from_slice(value) {
        Ok(binding) => Some(binding),
        Err(error) => {
            tracing::warn!(key, %error, "undecodable binding in redis; skipped");
            None
        }
    }
}

/// A stored mailbox's `NEW/OLD`, `None` (with a warning) when it does not parse.
pub fn decode_mailbox(key: &str, value: &str) -> Option<MessageCounts> {
    match MessageCounts::parse(value) {
        Ok(counts) => Some(counts),
        Err(error) => {
            tracing::warn!(key, %error, "undecodable mailbox in redis; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::actor::tests::binding;

    #[test]
    fn every_key_of_an_aor_shares_its_hash_tag() {
        assert_eq!(
            binding_key("9301", "sip:9301:@10.0.0.1:;?"),
            "dialtone:{9301}:b:sip:9301:@10.0.0.1:;?"
        );
        assert_eq!(index_key("9301"), "dialtone:{9301}:bindings");
        assert_eq!(mailbox_key("9301"), "dialtone:{9301}:mailbox");
        assert_eq!(aor_of_mailbox_key("dialtone:{9301}:mailbox"), Some("9301"));
        assert_eq!(aor_of_mailbox_key("dialtone:{9301}:bindings"), None);
        let set = Write::Delete {
            key: binding_key("9301", "sip:x:@h:;?"),
        };
        assert_eq!(set.hash_tag(), Some("9301"));
        let publish = Write::Publish {
            message: String::new(),
        };
        assert_eq!(publish.hash_tag(), None);
    }

    #[test]
    fn an_upsert_writes_its_binding_to_expire_with_it_indexes_it_and_announces_its_aor() {
        let b = binding("sip:9301@10.0.0.1", 1_700_000_600);
        let identity = b.identity();
        let writes =
            writes_for(&[BindingChange::Upsert(b.clone())], 1_700_000_000, "n1", 7).unwrap();
        assert_eq!(
            writes,
            vec![
                Write::SetExpiring {
                    key: binding_key("9301", &identity),
                    value: serde_json::to_string(&b).unwrap(),
                    at: 1_700_000_600,
                },
                Write::TrimIndex {
                    index: index_key("9301"),
                    before: 1_700_000_000,
                },
                Write::Index {
                    index: index_key("9301"),
                    member: identity,
                    score: 1_700_000_600,
                },
                Write::ExpireIndexNoEarlierThan {
                    index: index_key("9301"),
                    at: 1_700_000_600,
                },
                Write::Publish {
                    message: SyncMessage {
                        node: "n1".into(),
                        at_micros: 7,
                        aors: vec!["9301".into()],
                    }
                    .encode(),
                },
            ]
        );
        let Write::SetExpiring { key, value, .. } = &writes[0] else {
            unreachable!()
        };
        assert_eq!(decode_binding(key, value.as_bytes()), Some(b));
    }

    #[test]
    fn a_removal_deletes_and_unindexes_by_contact_identity() {
        // The removal names the contact as the REGISTER wrote it; the key is its identity.
        let writes = writes_for(
            &[BindingChange::Remove {
                aor: "9301".into(),
                contact: "sip:9301@HOST.example;unknownparam".into(),
            }],
            1,
            "n1",
            7,
        )
        .unwrap();
        let identity = contact_identity("sip:9301@host.example");
        assert_eq!(
            writes[..2],
            [
                Write::Delete {
                    key: binding_key("9301", &identity)
                },
                Write::Unindex {
                    index: index_key("9301"),
                    member: identity,
                },
            ]
        );
        assert!(matches!(writes[2], Write::Publish { .. }));
    }

    #[test]
    fn counts_are_kept_as_new_slash_old_and_announce_nothing() {
        let counts = MessageCounts { new: 2, old: 1 };
        let writes = writes_for(
            &[BindingChange::Mailbox {
                aor: "8000".into(),
                counts,
            }],
            1,
            "n1",
            7,
        )
        .unwrap();
        assert_eq!(
            writes,
            vec![Write::Set {
                key: mailbox_key("8000"),
                value: "2/1".into()
            }]
        );
        assert_eq!(decode_mailbox("k", "2/1"), Some(counts));
        assert_eq!(decode_mailbox("k", "two"), None);
    }

    #[test]
    fn a_batch_announces_each_aor_once() {
        let changes = [
            BindingChange::Upsert(binding("sip:9301@10.0.0.1", 100)),
            BindingChange::Upsert(binding("sip:9301@10.0.0.2", 100)),
        ];
        let writes = writes_for(&changes, 1, "n1", 7).unwrap();
        let Some(Write::Publish { message }) = writes.last() else {
            panic!("no publish: {writes:?}");
        };
        let message = SyncMessage::decode(message.as_bytes()).unwrap();
        assert_eq!(message.aors, vec!["9301".to_string()]);
    }

    #[test]
    fn the_sync_message_round_trips_and_other_payloads_are_ignored() {
        let message = SyncMessage {
            node: "4f1c".into(),
            at_micros: 1_700_000_000_123_456,
            aors: vec!["8000".into(), "8001".into()],
        };
        assert_eq!(
            message.encode(),
            r#"{"node":"4f1c","at_micros":1700000000123456,"aors":["8000","8001"]}"#
        );
        assert_eq!(
            SyncMessage::decode(message.encode().as_bytes()),
            Some(message)
        );
        assert_eq!(SyncMessage::decode(b"hello"), None);
    }
}
