//! Brute-force protection for SignIn: attempts per peer and failures per user name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits for [`SignInLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Sign-in attempts (successful or not) allowed per peer address in one window.
    pub per_peer: u32,
    /// Failed attempts allowed per user name in one window; success resets it.
    pub failures_per_user: u32,
    /// The window length.
    pub window: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            per_peer: 30,
            failures_per_user: 5,
            window: Duration::from_secs(300),
        }
    }
}

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Too many attempts from this address.
    Peer(Duration),
    /// Too many failures for this user name.
    User(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// Fixed-window counters in memory. A restart forgets them, which is acceptable: an attacker
/// cannot restart the manager, and the argon2 cost still bounds the guess rate.
#[derive(Debug)]
pub struct SignInLimiter {
    limits: SignInLimits,
    peers: Mutex<HashMap<String, Window>>,
    users: Mutex<HashMap<String, Window>>,
}

impl SignInLimiter {
    /// A limiter with these limits.
    pub fn new(limits: SignInLimits) -> Self {
        SignInLimiter {
            limits,
            peers: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt; refuses it when the peer or the user name is over its limit.
    pub fn check(&self, peer: &str, username: &str, now: Instant) -> Result<(), Throttled> {
        let window = self.limits.window;
        {
            let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = users.get(username) {
                let age = now.saturating_duration_since(w.started);
                if age < window && w.count >= self.limits.failures_per_user {
                    return Err(Throttled::User(window - age));
                }
            }
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut peers, now, window);
        let w = peers.entry(peer.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.saturating_duration_since(w.started) >= window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        if w.count >= self.limits.per_peer {
            return Err(Throttled::Peer(
                window - now.saturating_duration_since(w.started),
            ));
        }
        w.count += 1;
        Ok(())
    }

    /// Records a failed password for a user name.
    pub fn failed(&self, username: &str, now: Instant) {
        let window = self.limits.window;
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut users, now, window);
        let w = users.entry(username.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.saturating_duration_since(w.started) >= window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
    }

    /// Clears the failures of a user name after a successful sign-in.
    pub fn succeeded(&self, username: &str) {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

/// Drops expired windows once the map grows, so a flood of distinct names cannot grow memory
/// without bound.
fn prune(map: &mut HashMap<String, Window>, now: Instant, window: Duration) {
    if map.len() > 10_000 {
        map.retain(|_, w| now.saturating_duration_since(w.started) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> SignInLimiter {
        SignInLimiter::new(SignInLimits {
            per_peer: 3,
            failures_per_user: 2,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn user_is_locked_after_failures_until_the_window_ends() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..2 {
            l.check("p1", "alice", t0).unwrap();
            l.failed("alice", t0);
        }
        // A different peer does not help: the lock is on the name.
        assert!(matches!(l.check("p2", "alice", t0), Err(Throttled::User(d)) if d.as_secs() == 60));
        l.check("p2", "bob", t0).unwrap();
        l.check("p2", "alice", t0 + Duration::from_secs(61))
            .unwrap();
    }

    #[test]
    fn success_resets_user_failures() {
        let l = limiter();
        let t0 = Instant::now();
        l.failed("alice", t0);
        l.succeeded("alice");
        l.failed("alice", t0);
        l.check("p", "alice", t0).unwrap();
    }

    #[test]
    fn peer_is_limited_across_user_names() {
        let l = limiter();
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            l.check("10.0.0.1", name, t0).unwrap();
        }
        assert!(matches!(
            l.check("10.0.0.1", "d", t0),
            Err(Throttled::Peer(_))
        ));
        l.check("10.0.0.2", "d", t0).unwrap();
        l.check("10.0.0.1", "d", t0 + Duration::from_secs(60))
            .unwrap();
    }
}
