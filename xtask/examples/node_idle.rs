//! Measures the `manta_node` agent against a real in-process manager on 127.0.0.1: start to
//! registered (the real process, and in-process `Agent::start`), then the idle process's
//! memory (VmRSS, VmHWM) and CPU over a window with the manager's 5 s heartbeat.
//!
//! Run with the release binary built first:
//!
//! ```text
//! cargo build --release -p manta-node
//! cargo run --release -p xtask --example node_idle            # 30 s idle window
//! NODE_IDLE_SECS=60 NODE_STARTS=50 cargo run --release -p xtask --example node_idle
//! ```
//!
//! Targets (issue 9): idle RSS under 10 MB, idle CPU under 0.1 % of a core, start to
//! registered under 50 ms. The figures are printed, never asserted.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use manta_config::{Env, MantaHome};
use manta_manager::testing::TestManager;
use manta_node::{Agent, AgentOptions};
use secrecy::ExposeSecret as _;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `manta_node` binary of the same profile as this example.
fn node_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/node_idle -> target/<profile>/manta_node
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected example location")?
        .join("manta_node");
    if !bin.exists() {
        bail!(
            "{} is missing; build it first with `cargo build --release -p manta-node`",
            bin.display()
        );
    }
    Ok(bin)
}

/// `/proc/PID/stat` utime + stime, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("bad stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name, field 3 is index 0: utime is field 14, stime field 15.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// A `/proc/PID/status` value in kB.
fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: n={} min={:.1} ms median={:.1} ms p95={:.1} ms max={:.1} ms",
        v.len(),
        v[0].as_secs_f64() * 1e3,
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.95).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() -> Result<()> {
    let bin = node_binary()?;
    let idle_secs = env_u64("NODE_IDLE_SECS", 30);
    let starts = env_u64("NODE_STARTS", 20).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let manager = runtime.block_on(TestManager::start());
    let (node_addr, core) = (manager.node_addr, &manager.core);
    let cluster = core.platform().create_cluster("", "bench")?;
    let bootstrap = core.platform().bootstrap_token(&cluster, None)?;
    let home_dir = dir.path().join("home");
    let home = MantaHome::at(home_dir.join("manta"));
    let cfg = home.node_config("bench")?;
    std::fs::create_dir_all(cfg.parent().context("no parent")?)?;
    std::fs::write(
        &cfg,
        format!(
            "[identity]\nsecured_token = \"${{MANTA_NODE_TOKEN}}\"\nalias = \"bench-1\"\n\n[network]\nmanager_host = \"127.0.0.1\"\nmanager_port = {}\n\n[logging]\nlevel = \"INFO\"\n",
            node_addr.port()
        ),
    )?;
    let spawn = || {
        Command::new(&bin)
            .args(["start", "bench"])
            .env_clear()
            .env("MANTA_HOME", home.root())
            .env("HOME", &home_dir)
            .env("MANTA_NODE_TOKEN", bootstrap.expose_secret())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
    };
    let registered = |child: &mut std::process::Child| -> Result<()> {
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().context("no stderr")?).read_line(&mut line)?;
        if !line.contains("registered") {
            bail!("manta_node did not register: {line}");
        }
        Ok(())
    };

    // Process start to registered: exec, configuration, connect, IsAvailable, RegisterNode,
    // state file (fsync). The first start registers; later ones resume the identity.
    let mut process_times = Vec::new();
    for _ in 0..starts {
        let t0 = Instant::now();
        let mut child = spawn()?;
        registered(&mut child)?;
        process_times.push(t0.elapsed());
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        child.wait()?;
    }
    summary("process start -> registered", process_times);

    // In-process Agent::start (no exec), for the library's own share.
    let mut lib_times = Vec::new();
    runtime.block_on(async {
        for _ in 0..starts {
            let env = Env::from_pairs([("MANTA_NODE_TOKEN", bootstrap.expose_secret())]);
            let options = AgentOptions::new(&cfg, home.clone(), env);
            let t0 = Instant::now();
            let agent = Agent::start(options).await?;
            lib_times.push(t0.elapsed());
            agent.handle.shutdown();
            agent.wait().await?;
        }
        anyhow::Ok(())
    })?;
    summary("Agent::start -> registered (in-process)", lib_times);

    // Idle: one agent with the manager's 5 s heartbeat.
    let mut child = spawn()?;
    registered(&mut child)?;
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(2));
    let t0 = cpu_ticks(pid)?;
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let ticks = cpu_ticks(pid)? - t0;
    let wall = w0.elapsed().as_secs_f64();
    let hz = clock_ticks_per_second() as f64;
    let cpu_pct = ticks as f64 / hz / wall * 100.0;
    let rss = status_kb(pid, "VmRSS:")?;
    let hwm = status_kb(pid, "VmHWM:")?;
    let online = core
        .platform()
        .registry()
        .list(None)?
        .iter()
        .filter(|n| n.online)
        .count();
    println!(
        "idle over {wall:.0} s (5 s heartbeat): cpu {cpu_pct:.3} % of a core ({ticks} ticks at {hz} Hz), VmRSS {:.1} MB, VmHWM {:.1} MB, nodes online {online}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = child.wait()?;
    println!("SIGTERM exit status: {status}");
    Ok(())
}
