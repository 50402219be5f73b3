//! Brute-force protection for SignIn and CreateSession: a budget per peer, a lockout per
//! (user, peer), a slow-down per user, and a bound on concurrent argon2 evaluations.
//!
//! The design separates what an attacker spends from what a victim suffers, as OWASP's
//! authentication guidance, GitHub and Keycloak's brute-force detector do:
//!
//! - **Per-peer budget.** Every attempt from an address (IPv6 addresses by their /64, which
//!   one host usually holds whole) counts against [`SignInLimits::per_peer`] per window. A
//!   peer that floods is refused before any password is hashed.
//! - **Per-(user, peer) lockout.** [`SignInLimits::failures_per_user`] failures for one user
//!   name from one peer lock that pair for the rest of the window. An anonymous attacker
//!   therefore locks only itself out: the real user, or the administrator, signing in from
//!   another address is not affected.
//! - **Per-user slow-down.** A distributed attacker gets a budget per address, so every user
//!   name also counts its failures from all peers. Past [`SignInLimits::user_slow_down_after`]
//!   in a window, attempts from peers that have never signed in as that user are spaced to
//!   one per [`SignInLimits::user_slow_down`]: a guessing rate cap, not a lockout. Peers that
//!   signed in as the user before (kept for [`SignInLimits::trust_for`]) skip the slow-down.
//!
//! Each attempt reserves its place under one lock before the password is hashed, counting
//! attempts still in flight, so concurrent guesses cannot all pass a check made before any
//! of them recorded its failure. Hashing then runs on one of
//! [`SignInLimits::concurrent_checks`] checker threads behind a bounded queue (more waiting
//! attempts are refused), so a flood cannot take every CPU, every blocking thread or memory
//! for more than that many argon2 buffers. Checks for peers that signed in as the user
//! before go ahead of the queue, so a flood does not stand between users and their sign-in.
//!
//! Memory is bounded: names and addresses are kept only as 128-bit keyed SHA-256 digests
//! (the key is random per process), entries expire with their window, and each table holds
//! at most [`SignInLimits::max_entries`], evicting the oldest idle entry when full. The
//! counters live in memory, so a restart forgets them; an attacker cannot restart the
//! manager, and the argon2 cost still bounds the guess rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Limits for [`SignInLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Sign-in attempts (successful or not) allowed per peer address in one window.
    pub per_peer: u32,
    /// Failed attempts allowed for one user name from one peer in one window; success from
    /// that peer resets it.
    pub failures_per_user: u32,
    /// The window length.
    pub window: Duration,
    /// Failures of one user name from all peers in one window before attempts from peers
    /// without an earlier success are slowed down.
    pub user_slow_down_after: u32,
    /// Once slowed down, at most one attempt per this interval from such peers.
    pub user_slow_down: Duration,
    /// How long a peer that signed in as a user skips that user's slow-down.
    pub trust_for: Duration,
    /// The most entries each table (peers, pairs, users) holds.
    pub max_entries: usize,
    /// Passwords checked with argon2 at the same time (0: the number of CPUs).
    pub concurrent_checks: usize,
    /// Attempts that may wait for a check slot; more are refused at once.
    pub queued_checks: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            per_peer: 30,
            failures_per_user: 5,
            window: Duration::from_secs(300),
            user_slow_down_after: 20,
            user_slow_down: Duration::from_secs(2),
            trust_for: Duration::from_secs(30 * 86_400),
            max_entries: 100_000,
            concurrent_checks: 0,
            queued_checks: 64,
        }
    }
}

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Too many attempts from this address.
    Peer(Duration),
    /// Too many failures for this user name from this address.
    User(Duration),
    /// Too many failures for this user name from everywhere: attempts are spaced.
    Slowed(Duration),
    /// Every password-check slot is taken and the queue is full.
    Busy,
}

/// A 128-bit keyed digest of a name or an address: the tables never hold either in clear,
/// and nobody can choose inputs that collide.
type Key = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Duration,
    count: u32,
}

impl Window {
    fn new(now: Duration) -> Self {
        Window {
            started: now,
            count: 0,
        }
    }

    /// Restarts the window when it is over; returns the time left in it.
    fn roll(&mut self, now: Duration, length: Duration) -> Duration {
        let age = now.saturating_sub(self.started);
        if age >= length {
            *self = Window::new(now);
            length
        } else {
            length - age
        }
    }

    fn expired(&self, now: Duration, length: Duration) -> bool {
        now.saturating_sub(self.started) >= length
    }
}

#[derive(Debug)]
struct Pair {
    failures: Window,
    /// Attempts reserved and not yet finished.
    pending: u32,
    /// Until when this peer skips the user's slow-down (it signed in as the user).
    trusted_until: Option<Duration>,
}

#[derive(Debug)]
struct User {
    failures: Window,
    pending: u32,
    /// The earliest instant the next slowed-down attempt may start.
    next_slot: Duration,
}

#[derive(Debug)]
struct Tables {
    peers: HashMap<Key, Window>,
    pairs: HashMap<Key, Pair>,
    users: HashMap<Key, User>,
    last_sweep: Duration,
}

type Job = Box<dyn FnOnce() + Send>;

/// The password checks waiting for a checker thread. Attempts from peers that signed in as
/// the user before go first, so a flood does not stand between a user and their sign-in.
#[derive(Default)]
struct Queues {
    trusted: std::collections::VecDeque<Job>,
    other: std::collections::VecDeque<Job>,
    closed: bool,
}

/// The checker threads' shared state.
#[derive(Default)]
struct Checkers {
    queues: Mutex<Queues>,
    ready: Condvar,
    evaluations: AtomicU64,
}

impl Checkers {
    /// One checker thread: runs queued checks until the limiter is dropped.
    fn work(&self) {
        loop {
            let job = {
                let mut q = lock(&self.queues);
                loop {
                    if let Some(job) = q.trusted.pop_front().or_else(|| q.other.pop_front()) {
                        break job;
                    }
                    if q.closed {
                        return;
                    }
                    q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.evaluations.fetch_add(1, Ordering::Relaxed);
            // A panicking check drops its result sender, which the waiting caller sees; the
            // thread itself stays to serve the next one.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

/// The sign-in limiter. Share it behind the engine.
pub struct SignInLimiter {
    limits: SignInLimits,
    /// Random per process, so digests cannot be precomputed or made to collide.
    secret: [u8; 16],
    tables: Mutex<Tables>,
    checkers: std::sync::Arc<Checkers>,
}

impl Drop for SignInLimiter {
    fn drop(&mut self) {
        lock(&self.checkers.queues).closed = true;
        self.checkers.ready.notify_all();
    }
}

impl std::fmt::Debug for SignInLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the digest key nor the digests: only the limits and the table sizes.
        f.debug_struct("SignInLimiter")
            .field("limits", &self.limits)
            .field("entries", &self.entries())
            .field("evaluations", &self.evaluations())
            .finish_non_exhaustive()
    }
}

/// A reserved attempt. Finish it with [`Attempt::failed`] or [`Attempt::succeeded`];
/// dropping it releases the reservation without counting a failure (the check did not
/// happen, for example because the store failed).
#[derive(Debug)]
#[must_use = "an attempt holds a reservation until it is finished"]
pub struct Attempt<'a> {
    limiter: &'a SignInLimiter,
    pair: Key,
    user: Key,
    /// The peer signed in as this user before: its check goes ahead of the others.
    trusted: bool,
    done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The tables hold counters only; a panic mid-update leaves at worst one count off.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The part of an address that one party usually holds: the IPv4 address, or the /64 of an
/// IPv6 address (IPv4-mapped addresses count as IPv4). Anything else is taken as it is.
fn peer_network(peer: &str) -> String {
    match peer.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => peer.to_owned(),
    }
}

impl SignInLimiter {
    /// A limiter with these limits. It starts [`SignInLimits::concurrent_checks`] checker
    /// threads, which end when it is dropped.
    pub fn new(limits: SignInLimits) -> Self {
        let concurrent = match limits.concurrent_checks {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let checkers = std::sync::Arc::new(Checkers::default());
        // Dedicated threads bound the CPU that argon2 takes, and its memory too: each
        // thread's allocator keeps at most one 19 MiB buffer, where checks spread over the
        // blocking pool left one behind in every allocator arena they touched.
        let mut started = 0;
        for i in 0..concurrent {
            let c = std::sync::Arc::clone(&checkers);
            let spawned = std::thread::Builder::new()
                .name(format!("manta-password-{i}"))
                .spawn(move || c.work());
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a password checker thread"),
            }
        }
        if started == 0 {
            tracing::error!("no password checker thread runs; every sign-in will be refused");
            lock(&checkers.queues).closed = true;
        }
        SignInLimiter {
            limits,
            secret: rand::random(),
            tables: Mutex::new(Tables {
                peers: HashMap::new(),
                pairs: HashMap::new(),
                users: HashMap::new(),
                last_sweep: Duration::ZERO,
            }),
            checkers,
        }
    }

    fn key(&self, parts: &[&str]) -> Key {
        let mut h = Sha256::new();
        h.update(self.secret);
        for p in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        let digest = h.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// Reserves an attempt for `username` from `peer`, or refuses it. The reservation
    /// counts as a failure until it is finished, so concurrent attempts cannot overrun the
    /// limits. `now` (here and in [`Attempt`]) is the manager clock's monotonic reading,
    /// [`manta_auth::Clock::elapsed`], so a test advances the windows with a manual clock.
    pub fn begin(
        &self,
        peer: &str,
        username: &str,
        now: Duration,
    ) -> Result<Attempt<'_>, Throttled> {
        let l = &self.limits;
        let network = peer_network(peer);
        let peer_key = self.key(&["peer", &network]);
        let pair_key = self.key(&["pair", username, &network]);
        let user_key = self.key(&["user", username]);
        let mut t = lock(&self.tables);
        self.sweep(&mut t, now);

        // The pair lockout first: a locked pair does not spend the peer's budget.
        let trusted = match t.pairs.get_mut(&pair_key) {
            Some(p) => {
                let left = p.failures.roll(now, l.window);
                if p.failures.count.saturating_add(p.pending) >= l.failures_per_user {
                    return Err(Throttled::User(left));
                }
                p.trusted_until.is_some_and(|until| now < until)
            }
            None => false,
        };
        let slowed = match t.users.get_mut(&user_key) {
            Some(u) if !trusted => {
                u.failures.roll(now, l.window);
                let over = u.failures.count.saturating_add(u.pending) >= l.user_slow_down_after;
                if over && now < u.next_slot {
                    return Err(Throttled::Slowed(u.next_slot - now));
                }
                over
            }
            _ => false,
        };
        if let Some(w) = t.peers.get_mut(&peer_key) {
            let left = w.roll(now, l.window);
            if w.count >= l.per_peer {
                return Err(Throttled::Peer(left));
            }
        }

        // Every check passed: record the reservation in all three tables.
        let cap = l.max_entries;
        let window = l.window;
        make_room(
            &mut t.peers,
            &peer_key,
            cap,
            |w| w.expired(now, window),
            |w| Some(w.started),
        )
        .ok_or(Throttled::Busy)?;
        make_room(
            &mut t.pairs,
            &pair_key,
            cap,
            |p| pair_idle(p, now, window),
            |p| (p.pending == 0).then_some(p.failures.started),
        )
        .ok_or(Throttled::Busy)?;
        make_room(
            &mut t.users,
            &user_key,
            cap,
            |u| u.pending == 0 && u.failures.expired(now, window),
            |u| (u.pending == 0).then_some(u.failures.started),
        )
        .ok_or(Throttled::Busy)?;
        t.peers
            .entry(peer_key)
            .or_insert_with(|| Window::new(now))
            .count += 1;
        t.pairs
            .entry(pair_key)
            .or_insert_with(|| Pair {
                failures: Window::new(now),
                pending: 0,
                trusted_until: None,
            })
            .pending += 1;
        let user = t.users.entry(user_key).or_insert_with(|| User {
            failures: Window::new(now),
            pending: 0,
            next_slot: now,
        });
        user.pending += 1;
        if slowed {
            user.next_slot = now + l.user_slow_down;
        }
        Ok(Attempt {
            limiter: self,
            pair: pair_key,
            user: user_key,
            trusted,
            done: false,
        })
    }

    /// Runs a password check on one of the checker threads and waits for it; refuses at
    /// once when [`SignInLimits::queued_checks`] checks of the same priority already wait.
    /// `trusted` checks (see [`Attempt::trusted`]) go ahead of the others.
    pub fn evaluate<T: Send + 'static>(
        &self,
        trusted: bool,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Throttled> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(check());
        });
        {
            let mut q = lock(&self.checkers.queues);
            if q.closed {
                return Err(Throttled::Busy);
            }
            let queue = if trusted {
                &mut q.trusted
            } else {
                &mut q.other
            };
            if queue.len() >= self.limits.queued_checks {
                return Err(Throttled::Busy);
            }
            queue.push_back(job);
        }
        self.checkers.ready.notify_one();
        // An error means the check panicked (its sender is gone): no answer to give.
        rx.recv().map_err(|_| Throttled::Busy)
    }

    /// How many password checks the checker threads have started: the number of argon2
    /// evaluations, a figure for metrics and for tests that count guesses.
    pub fn evaluations(&self) -> u64 {
        self.checkers.evaluations.load(Ordering::Relaxed)
    }

    /// How many entries the tables hold (peers, pairs, users): a figure for tests that bound
    /// memory.
    pub fn entries(&self) -> (usize, usize, usize) {
        let t = lock(&self.tables);
        (t.peers.len(), t.pairs.len(), t.users.len())
    }

    /// Drops expired entries once per window, so memory follows the live attempts.
    fn sweep(&self, t: &mut Tables, now: Duration) {
        let window = self.limits.window;
        if now.saturating_sub(t.last_sweep) < window {
            return;
        }
        t.last_sweep = now;
        t.peers.retain(|_, w| !w.expired(now, window));
        t.pairs.retain(|_, p| !pair_idle(p, now, window));
        t.users
            .retain(|_, u| u.pending > 0 || !u.failures.expired(now, window));
    }

    fn finish(
        &self,
        pair: &Key,
        user: &Key,
        failed: Option<Duration>,
        succeeded: Option<Duration>,
    ) {
        let mut t = lock(&self.tables);
        let window = self.limits.window;
        if let Some(p) = t.pairs.get_mut(pair) {
            p.pending = p.pending.saturating_sub(1);
            if let Some(now) = failed {
                p.failures.roll(now, window);
                p.failures.count = p.failures.count.saturating_add(1);
            }
            if let Some(now) = succeeded {
                p.failures = Window::new(now);
                p.trusted_until = Some(now + self.limits.trust_for);
            }
        }
        if let Some(u) = t.users.get_mut(user) {
            u.pending = u.pending.saturating_sub(1);
            if let Some(now) = failed {
                u.failures.roll(now, window);
                u.failures.count = u.failures.count.saturating_add(1);
            }
        }
    }
}

fn pair_idle(p: &Pair, now: Duration, window: Duration) -> bool {
    p.pending == 0
        && p.failures.expired(now, window)
        && p.trusted_until.is_none_or(|until| now >= until)
}

/// Makes room for `key` in a table at its cap: first drops the entries `idle` says are
/// over, then evicts the oldest entry `age` allows (entries with attempts in flight are
/// never evicted). `None` when nothing can go.
fn make_room<V>(
    map: &mut HashMap<Key, V>,
    key: &Key,
    cap: usize,
    idle: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> Option<Duration>,
) -> Option<()> {
    if map.contains_key(key) || map.len() < cap {
        return Some(());
    }
    map.retain(|_, v| !idle(v));
    if map.len() < cap {
        return Some(());
    }
    let oldest = map
        .iter()
        .filter_map(|(k, v)| age(v).map(|at| (at, *k)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, k)| k)?;
    map.remove(&oldest);
    Some(())
}

impl Attempt<'_> {
    /// Whether the peer signed in as this user within [`SignInLimits::trust_for`].
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The password was wrong (or the user does not exist).
    pub fn failed(mut self, now: Duration) {
        self.done = true;
        self.limiter.finish(&self.pair, &self.user, Some(now), None);
    }

    /// The password was right: the pair's failures are cleared and the peer is trusted for
    /// this user.
    pub fn succeeded(mut self, now: Duration) {
        self.done = true;
        self.limiter.finish(&self.pair, &self.user, None, Some(now));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.finish(&self.pair, &self.user, None, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SignInLimits {
        SignInLimits {
            per_peer: 3,
            failures_per_user: 2,
            window: Duration::from_secs(60),
            user_slow_down_after: 4,
            user_slow_down: Duration::from_secs(2),
            trust_for: Duration::from_secs(3600),
            max_entries: 1000,
            concurrent_checks: 1,
            queued_checks: 1,
        }
    }

    fn fail(l: &SignInLimiter, peer: &str, user: &str, now: Duration) {
        l.begin(peer, user, now).unwrap().failed(now);
    }

    #[test]
    fn a_pair_is_locked_after_failures_until_the_window_ends() {
        let l = SignInLimiter::new(limits());
        let t0 = Duration::from_secs(1_000_000);
        fail(&l, "p1", "alice", t0);
        fail(&l, "p1", "alice", t0);
        assert!(matches!(l.begin("p1", "alice", t0), Err(Throttled::User(d)) if d.as_secs() == 60));
        drop(l.begin("p1", "bob", t0).unwrap());
        drop(
            l.begin("p1", "alice", t0 + Duration::from_secs(61))
                .unwrap(),
        );
    }

    #[test]
    fn an_attackers_failures_do_not_lock_the_user_out_from_another_peer() {
        let mut lim = limits();
        lim.per_peer = 100;
        let l = SignInLimiter::new(lim);
        let t0 = Duration::from_secs(1_000_000);
        fail(&l, "203.0.113.9", "admin", t0);
        fail(&l, "203.0.113.9", "admin", t0);
        assert!(l.begin("203.0.113.9", "admin", t0).is_err());
        l.begin("198.51.100.7", "admin", t0).unwrap().succeeded(t0);
    }

    #[test]
    fn reservations_count_before_the_check_finishes() {
        let l = SignInLimiter::new(limits());
        let t0 = Duration::from_secs(1_000_000);
        let a = l.begin("p", "alice", t0).unwrap();
        let b = l.begin("p", "alice", t0).unwrap();
        // Two checks are in flight: a third could be the one past the limit.
        assert!(matches!(l.begin("p", "alice", t0), Err(Throttled::User(_))));
        drop(a);
        b.failed(t0);
        // The dropped attempt released its place without counting as a failure.
        l.begin("p", "alice", t0).unwrap().failed(t0);
        assert!(l.begin("p", "alice", t0).is_err());
    }

    #[test]
    fn success_resets_the_pair_and_trusts_the_peer_past_the_slow_down() {
        let mut lim = limits();
        lim.per_peer = 100;
        let l = SignInLimiter::new(lim);
        let t0 = Duration::from_secs(1_000_000);
        fail(&l, "home", "alice", t0);
        l.begin("home", "alice", t0).unwrap().succeeded(t0);
        fail(&l, "home", "alice", t0);
        // Failures from many peers slow the name down for everyone new ...
        for i in 0..2 {
            fail(&l, &format!("10.0.0.{i}"), "alice", t0);
        }
        drop(l.begin("10.9.9.9", "alice", t0).unwrap());
        assert!(
            matches!(l.begin("10.9.9.8", "alice", t0), Err(Throttled::Slowed(d)) if d.as_secs() == 2)
        );
        drop(
            l.begin("10.9.9.8", "alice", t0 + Duration::from_secs(2))
                .unwrap(),
        );
        // ... but not for the peer that signed in as alice before.
        drop(l.begin("home", "alice", t0).unwrap());
        drop(l.begin("home", "alice", t0).unwrap());
    }

    #[test]
    fn a_peer_is_limited_across_user_names_and_ipv6_by_its_64() {
        let l = SignInLimiter::new(limits());
        let t0 = Duration::from_secs(1_000_000);
        for name in ["a", "b", "c"] {
            drop(l.begin("2001:db8:1:2::10", name, t0).unwrap());
        }
        assert!(matches!(
            l.begin("2001:db8:1:2::99", "d", t0),
            Err(Throttled::Peer(_))
        ));
        drop(l.begin("2001:db8:1:3::10", "d", t0).unwrap());
        drop(
            l.begin("2001:db8:1:2::10", "d", t0 + Duration::from_secs(60))
                .unwrap(),
        );
    }

    #[test]
    fn tables_stay_under_their_cap_and_expire() {
        let mut lim = limits();
        lim.per_peer = u32::MAX;
        lim.max_entries = 50;
        let l = SignInLimiter::new(lim);
        let t0 = Duration::from_secs(1_000_000);
        for i in 0..1000 {
            fail(
                &l,
                &format!("10.1.{}.{}", i / 256, i % 256),
                &format!("u{i}"),
                t0,
            );
        }
        let (peers, pairs, users) = l.entries();
        assert!(
            peers <= 50 && pairs <= 50 && users <= 50,
            "{:?}",
            l.entries()
        );
        fail(&l, "10.2.0.1", "late", t0 + Duration::from_secs(61));
        assert_eq!(
            l.entries(),
            (1, 1, 1),
            "a window later only the new attempt is left"
        );
    }

    #[test]
    fn checks_beyond_the_queue_are_refused_and_trusted_ones_go_first() {
        let l = std::sync::Arc::new(SignInLimiter::new(limits()));
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let running = std::thread::spawn({
            let l = l.clone();
            move || {
                l.evaluate(false, move || {
                    entered_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                })
                .unwrap();
            }
        });
        // The one checker thread is busy; one check of each priority may wait.
        entered_rx.recv().unwrap();
        let waiting = |trusted: bool, name: &'static str| {
            let (l2, order) = (l.clone(), order.clone());
            let t = std::thread::spawn(move || {
                l2.evaluate(trusted, move || lock(&order).push(name))
                    .is_ok()
            });
            let queued = |l: &SignInLimiter| {
                let q = lock(&l.checkers.queues);
                if trusted {
                    q.trusted.len()
                } else {
                    q.other.len()
                }
            };
            while queued(&l) == 0 {
                std::thread::yield_now();
            }
            t
        };
        let other = waiting(false, "other");
        let trusted = waiting(true, "trusted");
        assert_eq!(l.evaluate(false, || ()), Err(Throttled::Busy));
        assert_eq!(l.evaluate(true, || ()), Err(Throttled::Busy));
        go_tx.send(()).unwrap();
        running.join().unwrap();
        assert!(other.join().unwrap() && trusted.join().unwrap());
        assert_eq!(*lock(&order), ["trusted", "other"]);
        assert_eq!(l.evaluations(), 3);
    }
}
