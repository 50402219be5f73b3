//! Issue 14's bounded abuse run, for CI: oversized unauthenticated messages and an
//! idle-connection flood against one real manager, while a legitimate user signs in.
//!
//! The manager is the real binary in its own process, so its resident set is measured
//! alone, whatever else the test binary runs at the same time. Bounds asserted:
//! - RSS, sampled every few milliseconds, peaks at most [`RSS_BOUND_KIB`] above where it
//!   started over eight concurrent 32 MiB SignIn attempts (256 MiB declared; before the fix
//!   the manager read and buffered every byte of them), and ends the run, flood included,
//!   within the same bound;
//! - the server lets in at most [`LET_IN_BOUND_BYTES`] of those 256 MiB before refusing;
//! - the store grows by at most [`STORE_BOUND_BYTES`];
//! - of 300 idle connections from one address, exactly the per-peer cap is kept and the
//!   rest are closed at once, and the kept ones are closed by the handshake timeout;
//! - the legitimate user's sign-in succeeds during the flood. Its latency is printed, not
//!   asserted (timing targets are never asserted in tests).

use std::path::Path;
use std::time::{Duration, Instant};

use manta_proto::core::user_services::SignInRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use tokio::io::AsyncReadExt as _;

use crate::harness::channel;
use crate::limits::{CLOSE_BOUND, closed_by_server, connect_from, oversized_call};
use crate::process::{Served, admin};

/// Growth of the resident set allowed over the oversized attempts.
const RSS_BOUND_KIB: u64 = 48 * 1024;
/// Request body bytes the server may read, over all oversized attempts, before refusing.
const LET_IN_BOUND_BYTES: u64 = 16 << 20;
/// Growth of the database files allowed over the whole run.
const STORE_BOUND_BYTES: u64 = 1 << 20;
const OVERSIZED_ATTEMPTS: usize = 8;
const FLOOD: usize = 300;
const PER_PEER: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Samples the manager's RSS on a thread until stopped; returns the highest value seen.
struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = rss_kib(pid);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                // A sampling period, not a wait for an event: nothing is timed by it.
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_kib(pid))
        });
        PeakRss { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn store_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("manager.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

async fn sign_in(users: &mut UserManagementClient<tonic::transport::Channel>) -> Duration {
    let started = Instant::now();
    let signed_in = users
        .sign_in(SignInRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await;
    assert!(
        signed_in.is_ok(),
        "the legitimate sign-in failed: {signed_in:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_an_idle_flood_leave_memory_store_and_sign_in_bounded() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("manager.toml");
    std::fs::write(
        &config,
        format!("[limits]\nhandshake_timeout_secs = 1\nmax_connections_per_peer = {PER_PEER}\n"),
    )
    .unwrap();
    admin(
        data.path(),
        Some(&config),
        &["user", "add", "alice", "--password-stdin"],
        "password1\n",
    );
    let m = Served::start(data.path(), Some(&config), &[]);
    let (pid, user_addr) = (m.child.id(), m.user_addr);
    let mut users = UserManagementClient::new(channel(user_addr).await);
    let quiet = sign_in(&mut users).await;
    let (rss_before, store_before) = (rss_kib(pid), store_bytes(data.path()));

    // Eight 32 MiB sign-ins at once, each from a client that never holds the message.
    let sampler = PeakRss::start(pid);
    let attempts: Vec<_> = (0..OVERSIZED_ATTEMPTS)
        .map(|_| {
            let addr = user_addr;
            tokio::spawn(async move {
                oversized_call(addr, "/core.user_services.UserManagement/SignIn", 32 << 20).await
            })
        })
        .collect();
    let mut taken = 0;
    for attempt in attempts {
        let (code, message, sent) = attempt.await.unwrap();
        assert_eq!(code, tonic::Code::ResourceExhausted as i32, "{message}");
        taken += sent;
    }
    let rss_after_oversized = sampler.stop();

    // The flood: 300 connections from 127.0.0.2 that never send a byte.
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..FLOOD {
        let mut c = connect_from([127, 0, 0, 2], user_addr).await;
        let mut settings = [0u8; 64];
        // A kept connection hears the server's HTTP/2 settings; a refused one is closed.
        match tokio::time::timeout(CLOSE_BOUND, c.read(&mut settings)).await {
            Ok(Ok(n)) if n > 0 => kept.push(c),
            Ok(_) => refused += 1,
            Err(_) => panic!("the server neither spoke nor closed"),
        }
    }
    let during = sign_in(&mut users).await;
    let (rss_end, store_end) = (rss_kib(pid), store_bytes(data.path()));

    eprintln!(
        "abuse figures: rss {rss_before} KiB -> peak {rss_after_oversized} KiB during \
         {OVERSIZED_ATTEMPTS} x 32 MiB sign-ins ({} KiB body bytes let in), -> {rss_end} KiB \
         with the flood; store {store_before} -> {store_end} bytes; flood {FLOOD}: kept {}, \
         refused {refused}; sign-in {quiet:?} quiet, {during:?} during the flood",
        taken / 1024,
        kept.len()
    );
    assert!(
        rss_after_oversized.saturating_sub(rss_before) <= RSS_BOUND_KIB,
        "RSS grew from {rss_before} KiB to {rss_after_oversized} KiB"
    );
    assert!(
        taken <= LET_IN_BOUND_BYTES,
        "the server read {taken} bytes of oversized messages"
    );
    assert!(
        rss_end.saturating_sub(rss_before) <= RSS_BOUND_KIB,
        "RSS grew from {rss_before} KiB to {rss_end} KiB with the flood"
    );
    assert!(
        store_end.saturating_sub(store_before) <= STORE_BOUND_BYTES,
        "the store grew from {store_before} to {store_end} bytes"
    );
    assert_eq!((kept.len(), refused), (PER_PEER, FLOOD - PER_PEER));

    // The kept ones sent no preface: the handshake timeout closes them all.
    for c in &mut kept {
        assert!(
            closed_by_server(c).await,
            "a silent flood connection outlived the handshake timeout"
        );
    }
    drop(users);
    m.terminate();
}
