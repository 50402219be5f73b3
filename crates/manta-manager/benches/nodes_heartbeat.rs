//! The manager holding many simulated nodes heartbeating every 5 s: CPU (share of one core)
//! and RSS of the `manta-manager serve` process at each node count.
//!
//! Run with `cargo bench -p manta-manager --bench nodes_heartbeat`. Bounded: the node counts
//! come from `MANTA_BENCH_NODES` (default `1000,5000,10000`), each measured for
//! `MANTA_BENCH_WINDOW_SECS` seconds (default 15) after one warm-up interval. The target is at
//! most 25% of one core and 200 MB at 10,000 nodes. Client and manager share this machine, so
//! only the manager process is measured (from /proc).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use manta_proto::common::informations::NodeOverview;
use manta_proto::manta::v1::HeartbeatRequest;
use manta_proto::manta::v1::node_session_client::NodeSessionClient;
use manta_proto::node::node_service::node_service_client::NodeServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_manta-manager");
/// The heartbeat interval the manager asks for.
const INTERVAL: Duration = Duration::from_secs(5);
/// How often the client scheduler sends the heartbeats that fell due.
const TICK: Duration = Duration::from_millis(20);
const CHANNELS: usize = 8;

fn admin(data: &Path, args: &[&str]) -> String {
    // Admin commands never create a store; make the one a manager that ran would leave.
    drop(manta_manager::store::SqliteStore::open(&data.join("manager.db")).expect("open store"));
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("MANTA_LOG", "warn")
        .output()
        .expect("run manta-manager");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_owned()
}

fn serve(data: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--user-listen",
            "127.0.0.1:0",
            "--node-listen",
            "127.0.0.1:0",
        ])
        .env("MANTA_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start manta-manager serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let _user = lines.next();
    let node = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.strip_prefix("node api listening on ")?.parse().ok())
        .expect("node api address");
    (child, node)
}

/// CPU seconds (user + system) of a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // Linux reports in clock ticks of 100 Hz on every architecture this runs on.
    ticks / 100.0
}

/// Resident and peak resident set size of a process, in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn register(channels: &[Channel], bootstrap: &str, from: usize, to: usize) -> Vec<String> {
    let auth: MetadataValue<_> = bootstrap.parse().expect("token is ascii");
    let mut tokens = Vec::with_capacity(to - from);
    // 64 registrations in flight: each is a durable (fsync'd) write on the manager.
    for chunk in (from..to).collect::<Vec<_>>().chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let mut c = NodeServiceClient::new(channels[i % channels.len()].clone());
            let auth = auth.clone();
            set.spawn(async move {
                let mut r = tonic::Request::new(NodeOverview {
                    alias: Some(format!("sim-{i}")),
                    random_id: Some(false),
                    ..NodeOverview::default()
                });
                r.metadata_mut().insert("authorization", auth);
                let reg = c.register_node(r).await.expect("register").into_inner();
                reg.node_token.expect("node token")
            });
        }
        while let Some(t) = set.join_next().await {
            tokens.push(t.expect("registration task"));
        }
    }
    tokens
}

/// Sends every node's heartbeat once per interval, spread evenly, until `stop`.
async fn heartbeat(
    channels: Vec<Channel>,
    tokens: Arc<Vec<MetadataValue<tonic::metadata::Ascii>>>,
    until: Instant,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let n = tokens.len();
    let per_tick = (n as f64 * TICK.as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as usize;
    let mut tick = tokio::time::interval(TICK);
    let mut cursor = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let mut set = tokio::task::JoinSet::new();
        for k in 0..per_tick {
            let i = (cursor + k) % n;
            let mut c = NodeSessionClient::new(channels[i % channels.len()].clone());
            let auth = tokens[i].clone();
            let (sent, failed) = (Arc::clone(&sent), Arc::clone(&failed));
            set.spawn(async move {
                let mut r = tonic::Request::new(HeartbeatRequest::default());
                r.metadata_mut().insert("authorization", auth);
                match c.heartbeat(r).await {
                    Ok(_) => sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
        set.join_all().await;
        cursor = (cursor + per_tick) % n;
    }
}

fn main() {
    let levels: Vec<usize> = std::env::var("MANTA_BENCH_NODES")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let window = Duration::from_secs(
        std::env::var("MANTA_BENCH_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let cluster = admin(data, &["cluster", "create", "bench"]);
    let bootstrap = admin(
        data,
        &["node-token", "issue", "--cluster", &cluster, "--ttl", "2h"],
    );
    let (mut child, addr) = serve(data);
    let pid = child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("nodes  heartbeats/s  failed  manager CPU (% of one core)  RSS MB  peak RSS MB");
    runtime.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..CHANNELS {
            let ch = Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            channels.push(ch);
        }
        let mut tokens: Vec<MetadataValue<tonic::metadata::Ascii>> = Vec::new();
        for &level in &levels {
            let started = Instant::now();
            for t in register(&channels, &bootstrap, tokens.len(), level).await {
                tokens.push(t.parse().expect("token is ascii"));
            }
            eprintln!(
                "registered {level} nodes ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            let tokens = Arc::new(tokens.clone());
            let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let end = Instant::now() + INTERVAL + window;
            let load = tokio::spawn(heartbeat(
                channels.clone(),
                Arc::clone(&tokens),
                end,
                Arc::clone(&sent),
                Arc::clone(&failed),
            ));
            // Warm-up: one full interval so every node has heartbeated once.
            tokio::time::sleep(INTERVAL).await;
            let (cpu0, sent0, t0) = (cpu_secs(pid), sent.load(Ordering::Relaxed), Instant::now());
            tokio::time::sleep(window).await;
            let (cpu1, sent1, elapsed) =
                (cpu_secs(pid), sent.load(Ordering::Relaxed), t0.elapsed());
            load.await.expect("heartbeat load");
            let (rss, peak) = rss_mb(pid);
            println!(
                "{level:>5}  {:>12.0}  {:>6}  {:>27.1}  {rss:>6.1}  {peak:>11.1}",
                (sent1 - sent0) as f64 / elapsed.as_secs_f64(),
                failed.load(Ordering::Relaxed),
                100.0 * (cpu1 - cpu0) / elapsed.as_secs_f64(),
            );
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
