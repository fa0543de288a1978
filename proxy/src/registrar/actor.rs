//! The registrar actor: the thin shell around the location service that reads the clock.
//!
//! It sweeps expired bindings once a second ([`LocationService::expire_in_order`]) and writes
//! their removal to the store, and owns a [`StoreWriter`] for [`Persist`] and [`Flush`] (the
//! transport actors own another, for the REGISTERs they answer). REGISTERs do not pass through it: the workers apply them directly with
//! [`LocationService::register`], which is why the location service is a shared map and this
//! actor holds no binding of its own. [`start_registrar`] loads the store and starts it.
//!
//! With Redis, the sweep only clears memory: Redis expires each binding itself, and a
//! removal written by this node's sweep could delete a binding another node has just
//! refreshed (the refresh may not have reached this node's memory yet).

use std::time::{Duration, SystemTime};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};

use super::binding::BindingChange;
use super::choice::LocationChoice;
use super::journal_file::JournalSync;
use super::location::LocationService;
use super::mailbox::MessageCounts;
use super::redis_sync::{self, LinkStatus, RedisRegistrar};
use super::store::{BindingStore, StoreError, StoreWriter};

/// How often expired bindings are swept. A lookup already ignores expired bindings, so this only
/// bounds how long they take memory and a place in the store and the gauge.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Queues changes made outside [`LocationService::register`] (the admin API removing a
/// binding, say) to the store.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Persist(pub Vec<BindingChange>);

/// Waits until every change queued so far is on disk; for shutdown and tests.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Flush;

/// Sweeps bindings expired at the given time now; answers how many went. The periodic sweep does
/// the same with the clock's time.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Sweep(pub SystemTime);

/// See the module documentation.
#[derive(Debug)]
pub struct RegistrarActor {
    location: LocationService,
    writer: Option<StoreWriter>,
    sweep_every: Duration,
    /// Whether the sweep's removals are written (not when the store expires bindings itself).
    persist_expiries: bool,
}

impl RegistrarActor {
    /// An actor sweeping `location` every `sweep_every`, persisting through `writer` if any.
    pub fn new(
        location: LocationService,
        writer: Option<StoreWriter>,
        sweep_every: Duration,
    ) -> RegistrarActor {
        RegistrarActor {
            location,
            writer,
            sweep_every,
            persist_expiries: true,
        }
    }

    /// The sweep clears memory only: the store expires bindings itself (Redis).
    pub fn leaving_expiry_to_the_store(mut self) -> RegistrarActor {
        self.persist_expiries = false;
        self
    }

    fn sweep(&mut self, now: SystemTime) -> usize {
        let (sequence, expired) = self.location.expire_in_order(now);
        for (aor, binding) in &expired {
            tracing::debug!(aor, contact = binding.contact, "binding expired");
        }
        if !self.persist_expiries {
            return expired.len();
        }
        let removals = expired
            .iter()
            .map(|(aor, binding)| BindingChange::Remove {
                aor: aor.clone(),
                contact: binding.contact.clone(),
            })
            .collect();
        self.persist(sequence, removals);
        expired.len()
    }

    fn persist(&self, sequence: u64, changes: Vec<BindingChange>) {
        let Some(writer) = &self.writer else {
            return;
        };
        if let Err(error) = writer.send(sequence, changes) {
            // Memory stays right; only a restart would miss these changes.
            tracing::error!(%error, "registrar changes not persisted");
        }
    }
}

impl Actor for RegistrarActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.sweep_every, |actor, _| {
            actor.sweep(SystemTime::now());
        });
    }
}

impl Handler<Persist> for RegistrarActor {
    type Result = ();

    fn handle(&mut self, Persist(changes): Persist, _: &mut Context<Self>) {
        let sequence = self.location.next_sequence();
        self.persist(sequence, changes);
    }
}

impl Handler<Flush> for RegistrarActor {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let writer = self.writer.clone();
        Box::pin(async move {
            let Some(writer) = writer else {
                return Ok(());
            };
            // The wait includes an fsync: off the arbiter thread, which other actors share.
            tokio::task::spawn_blocking(move || writer.flush())
                .await
                .unwrap_or(Err(StoreError::WriterStopped))
        })
    }
}

impl Handler<Sweep> for RegistrarActor {
    type Result = usize;

    fn handle(&mut self, Sweep(now): Sweep, _: &mut Context<Self>) -> usize {
        self.sweep(now)
    }
}

/// The registrar as started: the location service to hand to the workers, the store's writer
/// (when the bindings are persisted) for the actors that carry out the core's `Persist`, and
/// the registrar actor.
pub struct Registrar {
    pub location: LocationService,
    /// The voicemail counts the store held (none in memory).
    pub mailboxes: Vec<(String, MessageCounts)>,
    pub writer: Option<StoreWriter>,
    pub actor: Addr<RegistrarActor>,
    /// With Redis: whether this node follows the other nodes' changes, for `/readyz`.
    pub link: Option<LinkStatus>,
}

/// Opens the store `choice` names, loads the bindings still alive, and starts the registrar
/// actor on the current arbiter (call it inside a running actix system). `journal_sync` says
/// when a redb store's journal reaches the disk; `sync_seconds` is the histogram of how long
/// other nodes' changes take to arrive (Redis only).
pub fn start_registrar(
    choice: &LocationChoice,
    journal_sync: JournalSync,
    sync_seconds: prometheus::Histogram,
) -> Result<Registrar, StoreError> {
    if let LocationChoice::Redis(target) = choice {
        let RedisRegistrar {
            location,
            mailboxes,
            writer,
            link,
        } = redis_sync::start(target.clone(), sync_seconds)?;
        let actor = RegistrarActor::new(location.clone(), Some(writer.clone()), SWEEP_INTERVAL)
            .leaving_expiry_to_the_store();
        return Ok(Registrar {
            location,
            mailboxes,
            writer: Some(writer),
            actor: actor.start(),
            link: Some(link),
        });
    }
    let (location, writer, mailboxes) = match choice {
        LocationChoice::Redb(dir) => {
            let store = BindingStore::open(dir)?;
            let bindings = store.load(SystemTime::now())?;
            let mailboxes = store.load_mailboxes()?;
            tracing::info!(
                bindings = bindings.len(),
                dir = %dir.display(),
                "registrar bindings loaded"
            );
            let writer = store.start_writer(journal_sync);
            let location = LocationService::with_bindings(bindings, true);
            (location, Some(writer), mailboxes)
        }
        _ => (LocationService::new(), None, Vec::new()),
    };
    let actor = RegistrarActor::new(location.clone(), writer.clone(), SWEEP_INTERVAL);
    Ok(Registrar {
        location,
        mailboxes,
        writer,
        actor: actor.start(),
        link: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::UNIX_EPOCH;

    use dialtone_sip::{Message, RequestBuilder};
    use dialtone_transaction::Transport;

    use std::path::Path;

    use super::*;
    use crate::registrar::binding::{unix_seconds, Binding};
    use crate::registrar::rules::{Origin, RegisterOutcome, RegistrarPolicy};

    const SEED_REGISTER: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/seed-flows/D-2-register-auth/04.sip"
    );

    fn redb(dir: &Path) -> LocationChoice {
        LocationChoice::Redb(dir.to_owned())
    }

    fn histogram() -> prometheus::Histogram {
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h")).unwrap()
    }

    fn origin() -> Origin {
        Origin {
            source: "192.168.2.194:5060".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    /// A binding of AOR 9301 made by a REGISTER from 192.168.2.194, lapsing at `expires_at`
    /// (Unix seconds); for tests anywhere in the crate.
    pub(crate) fn binding(contact: &str, expires_at: u64) -> Binding {
        Binding {
            aor: "9301".into(),
            contact: contact.into(),
            q: None,
            expires_at,
            call_id: "c".into(),
            cseq: 1,
            source: origin().source,
            transport: Transport::Udp,
            registered_at: expires_at.saturating_sub(60),
        }
    }

    /// The file as a kill -9 would leave it: copied while the writer still holds it open.
    fn crash_image(live: &Path) -> tempfile::TempDir {
        let image = tempfile::tempdir().unwrap();
        crate::registrar::store::copy_crash_image(live, image.path());
        image
    }

    #[actix::test]
    async fn a_restarted_registrar_finds_the_seed_registration() {
        let dir = tempfile::tempdir().unwrap();
        let Registrar {
            location,
            writer,
            actor: registrar,
            ..
        } = start_registrar(&redb(dir.path()), JournalSync::default(), histogram()).unwrap();
        let raw = std::fs::read(SEED_REGISTER).unwrap();
        let request = Message::parse(&raw).unwrap();
        let applied = location.register(
            &request,
            "9301",
            SystemTime::now(),
            origin(),
            &RegistrarPolicy::default(),
        );
        assert!(matches!(applied.outcome, RegisterOutcome::Ok { .. }));
        // What a transport actor does with the core's Persist.
        let (sequence, changes) = applied.into_persist().unwrap();
        writer.unwrap().send(sequence, changes).unwrap();
        registrar.send(Flush).await.unwrap().unwrap();

        let image = crash_image(dir.path());
        let restarted = start_registrar(&redb(image.path()), JournalSync::default(), histogram())
            .unwrap()
            .location;
        let found = restarted.lookup("9301", SystemTime::now());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].contact,
            "sip:9301@192.168.2.194;user=phone;transport=udp"
        );
        assert_eq!(found[0].source, origin().source);
        let left = found[0].remaining(SystemTime::now());
        assert!((3500..=3600).contains(&left), "{left} s left");
    }

    #[actix::test]
    async fn persist_queues_changes_made_outside_register() {
        let dir = tempfile::tempdir().unwrap();
        let registrar = start_registrar(&redb(dir.path()), JournalSync::default(), histogram())
            .unwrap()
            .actor;
        let far = unix_seconds(SystemTime::now()) + 600;
        registrar
            .send(Persist(vec![BindingChange::Upsert(binding(
                "sip:9301@10.0.0.1",
                far,
            ))]))
            .await
            .unwrap();
        registrar.send(Flush).await.unwrap().unwrap();
        let image = crash_image(dir.path());
        let loaded = BindingStore::open(image.path())
            .unwrap()
            .load(SystemTime::now())
            .unwrap();
        assert_eq!(loaded, vec![binding("sip:9301@10.0.0.1", far)]);
    }

    #[actix::test]
    async fn sweep_removes_expired_bindings_and_counts_them() {
        let t0 = 1_700_000_000;
        let location = LocationService::with_bindings(
            vec![
                binding("sip:9301@10.0.0.1", t0 + 60),
                binding("sip:9301@10.0.0.2", t0 + 600),
            ],
            false,
        );
        // A long interval so that only the explicit sweeps below run.
        let registrar =
            RegistrarActor::new(location.clone(), None, Duration::from_secs(3600)).start();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(registrar.send(Sweep(at(t0 + 59))).await.unwrap(), 0);
        assert_eq!(registrar.send(Sweep(at(t0 + 60))).await.unwrap(), 1);
        assert_eq!(location.count(), 1);
        assert_eq!(location.expired_total(), 1);
        assert_eq!(registrar.send(Flush).await.unwrap().ok(), Some(()));
    }

    #[actix::test]
    async fn the_periodic_sweep_runs_on_the_clock() {
        let past = unix_seconds(SystemTime::now()) - 1;
        let location =
            LocationService::with_bindings(vec![binding("sip:9301@10.0.0.1", past)], false);
        let _registrar =
            RegistrarActor::new(location.clone(), None, Duration::from_millis(10)).start();
        for _ in 0..200 {
            if location.count() == 0 {
                break;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(location.count(), 0);
        assert_eq!(location.expired_total(), 1);
    }

    #[actix::test]
    async fn without_a_data_dir_the_registrar_runs_in_memory() {
        let Registrar {
            location,
            actor: registrar,
            ..
        } = start_registrar(&LocationChoice::Memory, JournalSync::default(), histogram()).unwrap();
        let raw = RequestBuilder::new("REGISTER", "sip:lab.example")
            .header("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1")
            .header("From", "<sip:8000@lab.example>;tag=1")
            .header("To", "<sip:8000@lab.example>")
            .header("Call-ID", "mem")
            .header("CSeq", "1 REGISTER")
            .header("Contact", "<sip:8000@10.0.0.1>")
            .build();
        let request = Message::parse(&raw).unwrap();
        location.register(
            &request,
            "8000",
            SystemTime::now(),
            origin(),
            &RegistrarPolicy::default(),
        );
        assert!(!location.is_persistent());
        assert_eq!(location.lookup("8000", SystemTime::now()).len(), 1);
        assert_eq!(registrar.send(Flush).await.unwrap().ok(), Some(()));
    }
}
