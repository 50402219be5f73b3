//! GetUser with authorization against the same server with authorization disabled:
//! per-call latency (criterion), then throughput under load and p50/p99 at half the peak rate.
//!
//! Run with `cargo bench -p manta-manager --bench get_user`. Bounded: each load phase lasts
//! `MANTA_BENCH_SECS` seconds (default 3, three rounds per server) with at most 64 calls in
//! flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use manta_manager::server::ServeOptions;
use manta_manager::testing::{TestManager, TestOptions};
use manta_proto::core::user_services::GetUserRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use secrecy::ExposeSecret;
use tonic::transport::Channel;

/// Connections per load phase and calls in flight on each.
const CHANNELS: usize = 4;
const IN_FLIGHT_PER_CHANNEL: usize = 16;
/// Throughput rounds per server.
const ROUNDS: usize = 3;

struct Target {
    addr: SocketAddr,
    token: String,
    user_id: String,
    _manager: TestManager,
}

async fn start(authorization: bool) -> Target {
    let manager = TestManager::start_with(TestOptions {
        serve: ServeOptions {
            authorization,
            ..ServeOptions::default()
        },
        ..TestOptions::default()
    })
    .await;
    let user_id = manager.add_user("bench", "benchmark-password", &["user:read"]);
    let token = manager
        .api_token("bench", &["user:read"])
        .expose_secret()
        .to_owned();
    Target {
        addr: manager.user_addr,
        token,
        user_id,
        _manager: manager,
    }
}

async fn client(addr: SocketAddr) -> UserManagementClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    UserManagementClient::new(ch)
}

fn request(t: &Target) -> tonic::Request<GetUserRequest> {
    let mut r = tonic::Request::new(GetUserRequest {
        user_id: Some(t.user_id.clone()),
    });
    r.metadata_mut()
        .insert("authorization", t.token.parse().expect("ascii token"));
    r
}

/// Closed loop: as many calls as the server takes, for `secs`. Returns calls per second.
async fn peak(t: &Arc<Target>, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CHANNELS {
        let c = client(t.addr).await;
        for _ in 0..IN_FLIGHT_PER_CHANNEL {
            let (mut c, t, done, stop) = (c.clone(), Arc::clone(t), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    c.get_user(request(&t)).await.expect("GetUser");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    // Warm up, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let rate =
        (done.load(Ordering::Relaxed) - start_count) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    rate
}

/// Workers of the open-loop phase: the most calls it can have in flight (64 per connection).
const PACED_WORKERS: usize = 256;

/// Open loop at `rate` calls per second for `secs`: latencies of every call, sorted.
///
/// Call `i` is due at `i / rate`; worker `w` makes calls `w`, `w + PACED_WORKERS`, ... and
/// sleeps only when it is ahead of schedule. A call made late because earlier calls were slow
/// is timed from its due time, so a server that falls behind is charged for the wait (no
/// coordinated omission). A fixed pool keeps the generator's own cost per call low; spawning a
/// task per call cost the two shared cores enough to distort the figures.
async fn paced(t: &Arc<Target>, rate: f64, secs: f64) -> Vec<Duration> {
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(client(t.addr).await);
    }
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now() + Duration::from_millis(10);
    let mut workers = Vec::with_capacity(PACED_WORKERS);
    for w in 0..PACED_WORKERS {
        let (mut c, t) = (clients[w % CHANNELS].clone(), Arc::clone(t));
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / PACED_WORKERS + 1);
            for i in (w..total).step_by(PACED_WORKERS) {
                let due = started + interval.mul_f64(i as f64);
                // A late timer (tokio's resolution is 1 ms) is the generator's delay, not the
                // server's; being behind schedule is the server's.
                let mut from = due;
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                    from = Instant::now();
                }
                c.get_user(request(&t)).await.expect("GetUser");
                lat.push(from.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for worker in workers {
        lat.extend(worker.await.expect("paced worker"));
    }
    lat.sort();
    lat
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let secs: f64 = std::env::var("MANTA_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let (authed, open) =
        rt.block_on(async { (Arc::new(start(true).await), Arc::new(start(false).await)) });

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for (name, target) in [
        ("get_user/authorized", &authed),
        ("get_user/auth_disabled", &open),
    ] {
        let mut cl = rt.block_on(client(target.addr));
        c.bench_function(name, |b| {
            b.iter(|| rt.block_on(cl.get_user(request(target))).expect("GetUser"));
        });
    }
    c.final_summary();

    rt.block_on(async {
        // Alternate the two servers and keep each one's best round, so a burst of load from
        // elsewhere on the machine does not decide the ratio.
        let (mut with, mut without) = (0.0_f64, 0.0_f64);
        for _ in 0..ROUNDS {
            with = with.max(peak(&authed, secs).await);
            without = without.max(peak(&open, secs).await);
        }
        println!(
            "throughput (closed loop, {} in flight, best of {ROUNDS}): authorized {with:.0}/s, \
             auth disabled {without:.0}/s, ratio {:.3}",
            CHANNELS * IN_FLIGHT_PER_CHANNEL,
            with / without
        );
        for (name, target, peak_rate) in [
            ("authorized", &authed, with),
            ("auth disabled", &open, without),
        ] {
            let lat = paced(target, peak_rate / 2.0, secs).await;
            println!(
                "latency at half peak ({:.0}/s), {name}: p50 {:?}, p99 {:?} over {} calls",
                peak_rate / 2.0,
                pct(&lat, 0.50),
                pct(&lat, 0.99),
                lat.len()
            );
        }
    });
}
