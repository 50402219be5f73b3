//! Connection limits for [`crate::TlsIncoming`]: the caps on open connections (global and per
//! peer address), the deadlines that close silent and idle connections, and the stream count
//! that tells an idle connection from a busy one.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long a client may take, from the TCP accept, to finish the TLS handshake and send
/// the HTTP/2 connection preface.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with no open call stays open.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The first 24 bytes every HTTP/2 client sends (RFC 9113 §3.4).
const PREFACE_LEN: u64 = 24;

/// How [`crate::TlsIncoming`] treats connections.
#[derive(Clone, Debug)]
pub struct AcceptOptions {
    /// From the TCP accept to the end of the HTTP/2 client preface (the TLS handshake
    /// included); a client still silent then is closed.
    pub handshake_timeout: Duration,
    /// A connection with no open call for this long is closed; `None` keeps it.
    pub idle_timeout: Option<Duration>,
    /// `SO_KEEPALIVE` idle time, so the kernel finds peers that vanished; `None` leaves
    /// the socket's default.
    pub tcp_keepalive: Option<Duration>,
    /// The open-connection caps; share one limiter between listeners for a global cap.
    pub limiter: ConnectionLimiter,
}

impl Default for AcceptOptions {
    fn default() -> Self {
        AcceptOptions {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            tcp_keepalive: None,
            limiter: ConnectionLimiter::unlimited(),
        }
    }
}

/// Counts open connections and refuses those over a global or a per-peer cap.
///
/// Clones share the counts. A connection counts from its TCP accept (a TLS handshake in
/// progress holds a file descriptor too) until its socket is dropped. Peers are grouped by
/// IPv4 address and by IPv6 /64 prefix, since one IPv6 host commonly owns a whole /64.
#[derive(Clone, Debug)]
pub struct ConnectionLimiter {
    inner: Arc<LimiterInner>,
}

#[derive(Debug)]
struct LimiterInner {
    max_total: usize,
    max_per_peer: usize,
    counts: Mutex<Counts>,
    refused: AtomicU64,
    /// When a refusal was last logged at warn level: a flood must not flood the log too.
    last_warning: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    Peer,
}

/// How often, at most, a refused connection is logged at warn level (the rest at debug).
const WARN_EVERY: Duration = Duration::from_secs(10);

impl ConnectionLimiter {
    /// At most `max_total` connections open at once, and at most `max_per_peer` from one
    /// peer address.
    pub fn new(max_total: usize, max_per_peer: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::new(LimiterInner {
                max_total,
                max_per_peer,
                counts: Mutex::new(Counts::default()),
                refused: AtomicU64::new(0),
                last_warning: Mutex::new(None),
            }),
        }
    }

    /// No caps (connections are still counted).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Connections open now from `ip`'s peer group.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.counts()
            .per_peer
            .get(&peer_key(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Connections refused since the limiter was made.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is one step.
        self.inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a connection from `ip`, or says which cap it is over.
    pub(crate) fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let key = peer_key(ip);
        let mut counts = self.counts();
        let refusal = if counts.total >= self.inner.max_total {
            Some(Refusal::Total)
        } else if counts.per_peer.get(&key).copied().unwrap_or(0) >= self.inner.max_per_peer {
            Some(Refusal::Peer)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(counts);
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            self.log_refusal(ip, refusal);
            return Err(refusal);
        }
        counts.total += 1;
        *counts.per_peer.entry(key).or_insert(0) += 1;
        Ok(ConnectionPermit {
            limiter: self.clone(),
            key,
        })
    }

    fn log_refusal(&self, ip: IpAddr, refusal: Refusal) {
        let (cap, limit) = match refusal {
            Refusal::Total => ("max_connections", self.inner.max_total),
            Refusal::Peer => ("max_connections_per_peer", self.inner.max_per_peer),
        };
        let now = Instant::now();
        let warn = {
            let mut last = self
                .inner
                .last_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        let refused = self.refused();
        if warn {
            tracing::warn!(peer = %ip, cap, limit, refused_total = refused, "connection refused: over the connection cap");
        } else {
            tracing::debug!(peer = %ip, cap, limit, refused_total = refused, "connection refused: over the connection cap");
        }
    }
}

/// IPv4 addresses (and IPv4-mapped IPv6 ones) count alone; IPv6 addresses by /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    limiter: ConnectionLimiter,
    key: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limiter.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_peer.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_peer.remove(&self.key);
            }
        }
    }
}

/// What a connection's calls tell its idle deadline: how many are open and since when
/// none is.
#[derive(Debug)]
struct Activity {
    open: AtomicUsize,
    /// Set once any call has started: from then on only the idle timeout applies.
    started: AtomicBool,
    idle_since: Mutex<Instant>,
}

/// A handle on a connection's call count, carried in [`crate::PeerInfo`].
///
/// The server marks each call with [`StreamTracker::start`] and keeps the guard until the
/// call's response ends, so a connection with a long call open is never idle.
#[derive(Clone)]
pub struct StreamTracker {
    activity: Arc<Activity>,
}

impl std::fmt::Debug for StreamTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTracker")
            .field("open", &self.activity.open.load(Ordering::Relaxed))
            .finish()
    }
}

/// Two trackers are equal when they count the same connection.
impl PartialEq for StreamTracker {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.activity, &other.activity)
    }
}

impl Eq for StreamTracker {}

impl StreamTracker {
    fn new(accepted: Instant) -> Self {
        StreamTracker {
            activity: Arc::new(Activity {
                open: AtomicUsize::new(0),
                started: AtomicBool::new(false),
                idle_since: Mutex::new(accepted),
            }),
        }
    }

    /// Counts a call as open until the guard is dropped.
    pub fn start(&self) -> StreamGuard {
        self.activity.started.store(true, Ordering::Release);
        self.activity.open.fetch_add(1, Ordering::AcqRel);
        StreamGuard {
            activity: Arc::clone(&self.activity),
        }
    }

    /// Calls open now on this connection.
    pub fn open(&self) -> usize {
        self.activity.open.load(Ordering::Acquire)
    }
}

/// An open call; see [`StreamTracker::start`].
#[derive(Debug)]
pub struct StreamGuard {
    activity: Arc<Activity>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The idle clock restarts before the count can be seen at zero, so the deadline
        // never reads a stale "idle since".
        *self
            .activity
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.activity.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The deadlines of one connection, checked each time the server reads from it.
///
/// hyper always has a read pending on a live connection, so the timer registered here
/// wakes the connection task when a deadline passes; the read then reports end of stream
/// and hyper drops the connection.
pub(crate) struct Watch {
    tracker: StreamTracker,
    /// The end of the handshake window (TCP accept + handshake timeout).
    preface_deadline: Instant,
    idle_timeout: Option<Duration>,
    preface_read: u64,
    sleep: Pin<Box<Sleep>>,
    closed: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("tracker", &self.tracker)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Watch {
    pub(crate) fn new(accepted: Instant, options: &AcceptOptions) -> Self {
        let preface_deadline = accepted + options.handshake_timeout;
        Watch {
            tracker: StreamTracker::new(accepted),
            preface_deadline,
            idle_timeout: options.idle_timeout,
            preface_read: 0,
            sleep: Box::pin(tokio::time::sleep_until(preface_deadline)),
            closed: false,
        }
    }

    pub(crate) fn tracker(&self) -> StreamTracker {
        self.tracker.clone()
    }

    /// Records bytes read, for the preface deadline.
    pub(crate) fn read(&mut self, n: usize) {
        self.preface_read = self.preface_read.saturating_add(n as u64);
    }

    /// Whether the connection must close now; otherwise the timer is armed with `cx`.
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closed {
            return true;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            match self.next_deadline(Instant::now()) {
                Some(at) => self.sleep.as_mut().reset(at),
                None => {
                    self.closed = true;
                    return true;
                }
            }
        }
    }

    /// When to look again, or `None` when the connection must close now.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let activity = &self.tracker.activity;
        if self.preface_read < PREFACE_LEN && !activity.started.load(Ordering::Acquire) {
            if now >= self.preface_deadline {
                tracing::debug!("closing a connection that sent no HTTP/2 preface in time");
                return None;
            }
            return Some(self.preface_deadline);
        }
        let Some(idle) = self.idle_timeout else {
            // Nothing more to watch; a far deadline costs one timer entry.
            return Some(now + Duration::from_secs(86_400));
        };
        if activity.open.load(Ordering::Acquire) > 0 {
            return Some(now + idle);
        }
        let since = *activity
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Before its first call a connection is idle since its accept.
        let due = since + idle;
        if now >= due {
            tracing::debug!("closing a connection with no open call for the idle timeout");
            return None;
        }
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_peer_group_and_free_slots_on_drop() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = limiter.try_acquire(a).unwrap();
        let _two = limiter.try_acquire(a).unwrap();
        assert_eq!(limiter.try_acquire(a).unwrap_err(), Refusal::Peer);
        let _three = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(b).unwrap_err(), Refusal::Total);
        assert_eq!((limiter.open(), limiter.refused()), (3, 2));
        drop(one);
        assert_eq!(limiter.open_from(a), 1);
        let _again = limiter.try_acquire(a).unwrap();
    }

    #[test]
    fn ipv6_peers_are_grouped_by_prefix_and_mapped_ipv4_by_address() {
        let limiter = ConnectionLimiter::new(10, 1);
        let _p = limiter
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(
            limiter
                .try_acquire("2001:db8:1:2::ffff:9".parse().unwrap())
                .is_err()
        );
        assert!(
            limiter
                .try_acquire("2001:db8:1:3::1".parse().unwrap())
                .is_ok()
        );
        let _v4 = limiter.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            limiter
                .try_acquire("::ffff:192.0.2.7".parse().unwrap())
                .is_err()
        );
    }

    #[tokio::test]
    async fn silent_connections_close_at_the_handshake_deadline_and_idle_ones_later() {
        let options = AcceptOptions {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(60)),
            ..AcceptOptions::default()
        };
        let start = Instant::now();
        let mut silent = Watch::new(start, &options);
        assert_eq!(
            silent.next_deadline(start),
            Some(start + Duration::from_secs(10))
        );
        assert_eq!(silent.next_deadline(start + Duration::from_secs(10)), None);
        silent.read(23);
        assert_eq!(
            silent.next_deadline(start + Duration::from_secs(10)),
            None,
            "23 bytes are not a preface"
        );

        let mut polite = Watch::new(start, &options);
        polite.read(24);
        let idle_until = start + Duration::from_secs(60);
        assert_eq!(polite.next_deadline(start), Some(idle_until));
        let call = polite.tracker().start();
        let busy = start + Duration::from_secs(500);
        assert_eq!(
            polite.next_deadline(busy),
            Some(busy + Duration::from_secs(60)),
            "an open call keeps the connection"
        );
        let before = Instant::now();
        drop(call);
        let after = Instant::now();
        let due = polite.next_deadline(after).unwrap();
        assert!(due >= before + Duration::from_secs(60) && due <= after + Duration::from_secs(60));
        assert_eq!(polite.next_deadline(after + Duration::from_secs(60)), None);
    }
}
