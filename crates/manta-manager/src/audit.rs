//! The audit sink: authorization decisions and token uses, tallied in memory and written in
//! batches off the hot path.
//!
//! The authorization layer and handlers hand each decision to [`AuditSink::record`], which
//! adds it to a tally under a short lock without touching the database. One thread writes the
//! tallies: it wakes on the first decision after a quiet spell, gathers for [`WINDOW`], and
//! writes everything in one transaction. Decisions identical in every field but time share a
//! row with a count (see [`AuditEvent`]), so a client calling `GetUser` a thousand times a
//! second costs one row per window, not a thousand, while every decision is still counted.
//! API token last-use times come from the same tallies.
//!
//! The same thread enforces the [`Retention`] of the trail: once at start, then every
//! [`PRUNE_EVERY`] or whenever a tenth of the row limit was written since the last prune,
//! so a flood of distinct decisions cannot grow the store past the limit for long.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use manta_tls::PeerIdentity;

use crate::identity::Caller;
use crate::store::{AuditEvent, Store, TokenKind, millis_of};

/// How long the writer gathers decisions before it writes them. Bounds how stale
/// `manta-manager audit` can be against a running server, and how much a crash of the
/// process can lose.
pub const WINDOW: Duration = Duration::from_millis(50);

/// How often the writer prunes the trail to its [`Retention`] when little is written.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How long the audit trail is kept: rows older than `max_age` go, and only the newest
/// `max_rows` stay. `None` turns a bound off; both are on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows whose first decision is older than this are deleted.
    pub max_age: Option<Duration>,
    /// At most this many rows, the newest, are kept.
    pub max_rows: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(90 * 86_400)),
            max_rows: Some(500_000),
        }
    }
}

impl Retention {
    /// Keeps everything: for processes that only read the trail.
    pub const fn off() -> Self {
        Retention {
            max_age: None,
            max_rows: None,
        }
    }

    /// Applies the retention to a store now; returns how many rows were deleted.
    pub fn prune(&self, store: &dyn Store, now_ms: i64) -> crate::error::Result<u64> {
        if self.max_age.is_none() && self.max_rows.is_none() {
            return Ok(0);
        }
        let older_than = self
            .max_age
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
        store.prune_audit(older_than, self.max_rows)
    }

    /// Rows written after which the writer prunes without waiting for [`PRUNE_EVERY`].
    fn rows_between_prunes(&self) -> u64 {
        self.max_rows.map_or(u64::MAX, |n| (n / 10).max(1))
    }
}

/// Who made a call.
#[derive(Debug, Clone)]
pub enum Who {
    /// No verified token (missing, malformed, expired, revoked ...).
    Nobody,
    /// A verified user or API token.
    User(Arc<Caller>),
    /// A verified node-side token: node or bootstrap.
    Node {
        /// The node id or the cluster of a bootstrap token.
        subject: String,
        /// The token's `jti`.
        token_id: String,
    },
}

impl Who {
    fn subject(&self) -> Option<&str> {
        match self {
            Who::Nobody => None,
            Who::User(c) => Some(&c.user_id),
            Who::Node { subject, .. } => Some(subject),
        }
    }

    fn token_id(&self) -> Option<&str> {
        match self {
            Who::Nobody => None,
            Who::User(c) => Some(&c.token_id),
            Who::Node { token_id, .. } => Some(token_id),
        }
    }

    /// The `jti` of an API token, whose last use is recorded.
    fn api_token(&self) -> Option<&str> {
        match self {
            Who::User(c) if c.kind == TokenKind::Api => Some(&c.token_id),
            _ => None,
        }
    }
}

impl PartialEq for Who {
    fn eq(&self, other: &Self) -> bool {
        self.subject() == other.subject() && self.token_id() == other.token_id()
    }
}

impl Eq for Who {}

impl Hash for Who {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.subject().hash(state);
        self.token_id().hash(state);
    }
}

/// One authorization decision, as the layer or a handler made it.
#[derive(Debug)]
pub struct Decision<'a> {
    /// The caller, when a token was verified.
    pub who: Who,
    /// The gRPC path.
    pub method: Cow<'static, str>,
    /// The resource acted on, when the method names one.
    pub resource: Option<String>,
    /// Allowed or denied.
    pub allowed: bool,
    /// The scope that granted or was missing, or the token problem.
    pub reason: Cow<'static, str>,
    /// The peer address.
    pub peer: Option<SocketAddr>,
    /// The verified client certificate under mTLS.
    pub client: Option<&'a PeerIdentity>,
}

/// Everything of a decision but its time: decisions with equal keys share a row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    who: Who,
    method: Cow<'static, str>,
    resource: Option<String>,
    allowed: bool,
    reason: Cow<'static, str>,
    peer: Option<SocketAddr>,
    client: Option<[u8; 32]>,
}

#[derive(Debug)]
struct Tally {
    /// The order in which runs began, so rows are written in that order (several decisions
    /// can share a millisecond).
    seq: u64,
    first_ms: i64,
    last_ms: i64,
    count: u64,
    /// The certificate identity as text, made once per row rather than once per call.
    client_text: Option<String>,
}

#[derive(Debug, Default)]
struct Pending {
    tallies: HashMap<Key, Tally>,
    next_seq: u64,
    waiters: Vec<mpsc::Sender<()>>,
    closed: bool,
    /// The writer thread is gone (it could not start, or it panicked): nothing will be
    /// written, and nobody may wait for it.
    dead: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the tally half-updated in a way that
        // matters: at worst one decision's count is off by one.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes the writer when the last [`AuditSink`] clone is dropped.
#[derive(Debug)]
struct SinkHandle {
    shared: Arc<Shared>,
    /// The manager's clock: the time each decision is recorded at.
    clock: manta_auth::SharedClock,
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Hands decisions to the background writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    handle: Arc<SinkHandle>,
}

/// The writer thread; dropping every [`AuditSink`] lets it write what is left and stop.
#[derive(Debug)]
pub struct AuditWriter {
    handle: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Waits until every decision recorded so far is written (call after dropping the sinks).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            // A panicking writer already logged its panic; nothing more to do here.
            let _ = h.join();
        }
    }
}

/// Starts the writer thread over a store, with the default [`Retention`], on the system
/// clock.
pub fn start(store: Arc<dyn Store>) -> (AuditSink, AuditWriter) {
    start_with(store, Retention::default())
}

/// Starts the writer thread over a store, keeping the trail to `retention`, on the system
/// clock.
pub fn start_with(store: Arc<dyn Store>, retention: Retention) -> (AuditSink, AuditWriter) {
    start_with_clock(store, retention, manta_auth::system_clock())
}

/// As [`start_with`], timing events and retention by `clock` (the manager's one clock). The
/// writer's batching window and prune cadence stay on the monotonic timer of its thread.
pub fn start_with_clock(
    store: Arc<dyn Store>,
    retention: Retention,
    clock: manta_auth::SharedClock,
) -> (AuditSink, AuditWriter) {
    let shared = Arc::new(Shared::default());
    let writer_shared = Arc::clone(&shared);
    let writer_clock = Arc::clone(&clock);
    let handle = std::thread::Builder::new()
        .name("manta-audit".into())
        .spawn(move || {
            let _mark = DeadOnExit(&writer_shared);
            run(
                store.as_ref(),
                &writer_shared,
                retention,
                writer_clock.as_ref(),
            );
        })
        .ok();
    if handle.is_none() {
        tracing::error!("cannot start the audit writer thread; audit events will be lost");
        shared.lock().dead = true;
    }
    (
        AuditSink {
            handle: Arc::new(SinkHandle { shared, clock }),
        },
        AuditWriter { handle },
    )
}

impl AuditSink {
    /// Records one decision. Takes a short lock and, for a decision seen before in this
    /// window, allocates nothing.
    pub fn record(&self, decision: Decision<'_>) {
        let at = millis_of(self.handle.clock.as_ref());
        let key = Key {
            who: decision.who,
            method: decision.method,
            resource: decision.resource,
            allowed: decision.allowed,
            reason: decision.reason,
            peer: decision.peer,
            client: decision.client.map(PeerIdentity::fingerprint),
        };
        let shared = &self.handle.shared;
        let mut pending = shared.lock();
        if pending.dead {
            drop(pending);
            tracing::error!(
                method = %key.method,
                "audit writer stopped; an authorization decision was not recorded"
            );
            return;
        }
        let was_idle = pending.tallies.is_empty();
        let seq = pending.next_seq;
        match pending.tallies.entry(key) {
            Entry::Occupied(mut seen) => {
                let t = seen.get_mut();
                t.count += 1;
                t.last_ms = t.last_ms.max(at);
            }
            Entry::Vacant(slot) => {
                slot.insert(Tally {
                    seq,
                    first_ms: at,
                    last_ms: at,
                    count: 1,
                    client_text: decision.client.map(ToString::to_string),
                });
                pending.next_seq += 1;
            }
        }
        drop(pending);
        // Only the first decision after a write needs to wake the writer; it then gathers
        // for a window on its own.
        if was_idle {
            shared.wake.notify_one();
        }
    }

    /// Blocks until everything recorded before this call is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        let shared = &self.handle.shared;
        {
            let mut pending = shared.lock();
            if pending.dead {
                return;
            }
            pending.waiters.push(done_tx);
        }
        shared.wake.notify_one();
        // An error means the writer ended meanwhile; there is nothing more to wait for.
        let _ = done_rx.recv();
    }
}

/// Marks the writer dead when its thread ends, normally or by a panic, and releases anyone
/// waiting in [`AuditSink::flush`].
struct DeadOnExit<'a>(&'a Shared);

impl Drop for DeadOnExit<'_> {
    fn drop(&mut self) {
        let mut pending = self.0.lock();
        pending.dead = true;
        // Dropping the senders ends every `flush` waiting on them.
        pending.waiters.clear();
    }
}

fn prune(store: &dyn Store, retention: &Retention, clock: &dyn manta_auth::Clock) {
    match retention.prune(store, millis_of(clock)) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "pruned the audit trail"),
        Err(e) => tracing::warn!(error = %e, "cannot prune the audit trail"),
    }
}

fn run(store: &dyn Store, shared: &Shared, retention: Retention, clock: &dyn manta_auth::Clock) {
    prune(store, &retention, clock);
    let mut last_prune = Instant::now();
    let mut since_prune: u64 = 0;
    loop {
        let mut pending = shared.lock();
        while pending.tallies.is_empty() && pending.waiters.is_empty() && !pending.closed {
            pending = shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        // Gather repeats for a window; a flush request or shutdown cuts it short.
        let deadline = Instant::now() + WINDOW;
        while pending.waiters.is_empty() && !pending.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pending = shared
                .wake
                .wait_timeout(pending, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let tallies = std::mem::take(&mut pending.tallies);
        let waiters = std::mem::take(&mut pending.waiters);
        let closed = pending.closed;
        drop(pending);
        since_prune = since_prune.saturating_add(write(store, tallies));
        // Before the waiters are released, so a flush also sees the trail pruned.
        if since_prune >= retention.rows_between_prunes() || last_prune.elapsed() >= PRUNE_EVERY {
            prune(store, &retention, clock);
            last_prune = Instant::now();
            since_prune = 0;
        }
        for w in waiters {
            let _ = w.send(());
        }
        if closed && shared.lock().tallies.is_empty() {
            return;
        }
    }
}

/// Writes the tallies; returns how many rows that added.
fn write(store: &dyn Store, tallies: HashMap<Key, Tally>) -> u64 {
    if tallies.is_empty() {
        return 0;
    }
    let mut used: HashMap<String, i64> = HashMap::new();
    let mut tallies: Vec<(Key, Tally)> = tallies.into_iter().collect();
    // Rows in the order the runs began, so `audit` lists them newest first.
    tallies.sort_by_key(|(_, t)| t.seq);
    let mut events: Vec<AuditEvent> = Vec::with_capacity(tallies.len());
    for (key, t) in tallies {
        if let Some(jti) = key.who.api_token() {
            let at = t.last_ms / 1000;
            let slot = used.entry(jti.to_owned()).or_insert(at);
            *slot = (*slot).max(at);
        }
        events.push(AuditEvent {
            at_ms: t.first_ms,
            last_at_ms: t.last_ms,
            count: t.count,
            subject: key.who.subject().map(str::to_owned),
            token_id: key.who.token_id().map(str::to_owned),
            method: key.method.into_owned(),
            resource: key.resource,
            allowed: key.allowed,
            reason: key.reason.into_owned(),
            peer: key.peer.map(|a| a.to_string()),
            client_identity: t.client_text,
        });
    }
    if let Err(e) = store.append_audit(&events) {
        tracing::error!(error = %e, count = events.len(), "cannot write audit events");
    }
    let used: Vec<(String, i64)> = used.into_iter().collect();
    if let Err(e) = store.touch_tokens(&used) {
        tracing::warn!(error = %e, "cannot record token last-use times");
    }
    events.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditQuery, SqliteStore};

    fn caller(jti: &str, kind: TokenKind) -> Arc<Caller> {
        Arc::new(Caller {
            user_id: "u1".into(),
            token_id: jti.into(),
            kind,
            scopes: vec![],
            session_id: None,
            expires_at: i64::MAX,
            generation: 0,
        })
    }

    fn decision(who: Who, method: &'static str, allowed: bool) -> Decision<'static> {
        Decision {
            who,
            method: Cow::Borrowed(method),
            resource: None,
            allowed,
            reason: Cow::Borrowed("r"),
            peer: Some(SocketAddr::from(([127, 0, 0, 1], 4000))),
            client: None,
        }
    }

    fn started() -> (tempfile::TempDir, Arc<SqliteStore>, AuditSink, AuditWriter) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("m.db")).unwrap());
        let (sink, writer) = start(store.clone());
        (dir, store, sink, writer)
    }

    fn all(store: &SqliteStore) -> Vec<AuditEvent> {
        store
            .query_audit(&AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            })
            .unwrap()
    }

    #[test]
    fn identical_decisions_share_a_row_and_every_one_is_counted() {
        let (_dir, store, sink, writer) = started();
        let api = caller("api-1", TokenKind::Api);
        for _ in 0..500 {
            sink.record(decision(Who::User(api.clone()), "/s/GetUser", true));
        }
        sink.record(decision(Who::User(api.clone()), "/s/ListUserIds", false));
        sink.record(decision(Who::Nobody, "/s/GetUser", false));
        sink.flush();
        let rows = all(&store);
        let total: u64 = rows.iter().map(|e| e.count).sum();
        assert_eq!(total, 502, "every decision is counted: {rows:?}");
        let get = rows
            .iter()
            .find(|e| e.method == "/s/GetUser" && e.allowed)
            .unwrap();
        // The 500 calls may straddle a write window; either way none is lost.
        let gets: u64 = rows
            .iter()
            .filter(|e| e.method == "/s/GetUser" && e.allowed)
            .map(|e| e.count)
            .sum();
        assert_eq!(gets, 500);
        assert!(get.last_at_ms >= get.at_ms);
        assert_eq!(get.subject.as_deref(), Some("u1"));
        assert_eq!(get.token_id.as_deref(), Some("api-1"));
        assert_eq!(get.peer.as_deref(), Some("127.0.0.1:4000"));
        let anonymous = rows.iter().find(|e| e.subject.is_none()).unwrap();
        assert!(!anonymous.allowed && anonymous.count == 1);
        drop(sink);
        writer.join();
    }

    #[test]
    fn dropping_the_sinks_writes_what_is_left_and_stops_the_writer() {
        let (_dir, store, sink, writer) = started();
        let other = sink.clone();
        sink.record(decision(Who::Nobody, "/s/A", false));
        drop(sink);
        other.record(decision(Who::Nobody, "/s/B", false));
        drop(other);
        // join returns only because the last sink closed the writer, after it wrote both.
        writer.join();
        let mut methods: Vec<_> = all(&store).into_iter().map(|e| e.method).collect();
        methods.sort();
        assert_eq!(methods, ["/s/A", "/s/B"]);
    }

    #[test]
    fn a_dead_writer_neither_hangs_flush_nor_hoards_decisions() {
        let shared = Arc::new(Shared::default());
        let writer = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || {
                let _mark = DeadOnExit(&shared);
                panic!("the writer fails");
            }
        });
        assert!(writer.join().is_err());
        let sink = AuditSink {
            handle: Arc::new(SinkHandle {
                shared: Arc::clone(&shared),
                clock: manta_auth::system_clock(),
            }),
        };
        sink.record(decision(Who::Nobody, "/s/M", false));
        assert!(shared.lock().tallies.is_empty(), "nothing piles up");
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            sink.flush();
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("flush returns when the writer is gone");
    }

    #[test]
    fn rows_keep_the_order_decisions_were_made_in() {
        let (_dir, store, sink, writer) = started();
        // Many decisions within one millisecond: time alone cannot order them.
        let methods: Vec<String> = (0..20).map(|i| format!("/s/M{i:02}")).collect();
        for m in &methods {
            let mut d = decision(Who::Nobody, "", false);
            d.method = Cow::Owned(m.clone());
            sink.record(d);
        }
        sink.flush();
        let mut newest_first: Vec<String> = all(&store).into_iter().map(|e| e.method).collect();
        newest_first.reverse();
        assert_eq!(newest_first, methods);
        drop(sink);
        writer.join();
    }

    #[test]
    fn decisions_that_differ_in_any_field_get_their_own_rows() {
        let (_dir, store, sink, writer) = started();
        let a = caller("a", TokenKind::Access);
        let b = caller("b", TokenKind::Access);
        sink.record(decision(Who::User(a.clone()), "/s/M", true));
        sink.record(decision(Who::User(b), "/s/M", true));
        sink.record(decision(Who::User(a.clone()), "/s/M", false));
        let mut other_peer = decision(Who::User(a.clone()), "/s/M", true);
        other_peer.peer = Some(SocketAddr::from(([127, 0, 0, 1], 4001)));
        sink.record(other_peer);
        let mut resource = decision(Who::User(a), "/s/M", true);
        resource.resource = Some("user-2".into());
        sink.record(resource);
        sink.flush();
        let rows = all(&store);
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert!(rows.iter().all(|e| e.count == 1));
        drop(sink);
        writer.join();
    }
}
