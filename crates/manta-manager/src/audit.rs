//! The audit sink: authorization decisions and token uses, written in batches off the hot path.
//!
//! Handlers and the authorization layer hand events to a channel; one thread drains it and
//! writes each batch in a single transaction. This keeps an authorized call from waiting for
//! the database while every decision still reaches the store within milliseconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::store::{AuditEvent, Store};

/// How many events one transaction takes at most.
const BATCH: usize = 1024;

enum Msg {
    Event(AuditEvent),
    Used(String, i64),
    Flush(mpsc::Sender<()>),
}

/// Sends audit events to the background writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

/// The writer thread; dropping every [`AuditSink`] lets it drain and stop.
#[derive(Debug)]
pub struct AuditWriter {
    handle: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Waits until every event sent so far is written (call after dropping the sinks).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            // A panicking writer already logged its panic; nothing more to do here.
            let _ = h.join();
        }
    }
}

/// Starts the writer thread over a store.
pub fn start(store: Arc<dyn Store>) -> (AuditSink, AuditWriter) {
    let (tx, rx) = mpsc::channel::<Msg>();
    let handle = std::thread::Builder::new()
        .name("manta-audit".into())
        .spawn(move || run(store.as_ref(), &rx))
        .ok();
    if handle.is_none() {
        tracing::error!("cannot start the audit writer thread; audit events will be lost");
    }
    (AuditSink { tx }, AuditWriter { handle })
}

impl AuditSink {
    /// Queues one decision.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(event)).is_err() {
            tracing::error!("audit writer stopped; an authorization decision was not recorded");
        }
    }

    /// Queues a "token used at" update (coalesced per batch).
    pub fn used(&self, jti: &str, at: i64) {
        // Losing a last-used timestamp during shutdown is harmless.
        let _ = self.tx.send(Msg::Used(jti.to_owned(), at));
    }

    /// Blocks until everything queued before this call is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }
}

fn run(store: &dyn Store, rx: &mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut events = Vec::new();
        let mut used: HashMap<String, i64> = HashMap::new();
        let mut waiters = Vec::new();
        let mut take = |msg: Msg| match msg {
            Msg::Event(e) => events.push(e),
            Msg::Used(jti, at) => {
                let slot = used.entry(jti).or_insert(at);
                *slot = (*slot).max(at);
            }
            Msg::Flush(done) => waiters.push(done),
        };
        take(first);
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(msg) => take(msg),
                Err(_) => break,
            }
        }
        if let Err(e) = store.append_audit(&events) {
            tracing::error!(error = %e, count = events.len(), "cannot write audit events");
        }
        let used: Vec<(String, i64)> = used.into_iter().collect();
        if let Err(e) = store.touch_tokens(&used) {
            tracing::warn!(error = %e, "cannot record token last-use times");
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}
