//! `cargo xtask bench [--quick] [--out DIR]`: runs every benchmark of the workspace and the
//! end-to-end load figures, each bounded in time, and writes one table with the targets and
//! ratios as markdown and JSON (`target/bench/report.md`, `target/bench/report.json`).
//!
//! The figures come from the benchmarks' own output (criterion's `time:` lines and the
//! programs' summary lines), which each bench's source documents; the raw output of every
//! run is kept next to the report (`target/bench/<name>.log`) so a surprising figure can be
//! checked. A bench that cannot run here (no Python SDK venv) is reported as skipped with the
//! reason, never silently left out.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

/// Parsed `bench` arguments.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Options {
    /// Short windows everywhere (a smoke run of a few minutes).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Where the report goes (default `target/bench`).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

impl Options {
    pub(crate) fn parse(args: &[&str]) -> Result<Options> {
        crate::parse_options(
            "bench",
            args,
            "--quick or --out DIR",
            &[("--out", "a directory")],
        )
    }
}

/// Time limits of one run.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// criterion `--warm-up-time` and `--measurement-time`, in seconds.
    warm_up: &'static str,
    measure: &'static str,
    /// The manager GetUser load phases (`MANTA_BENCH_SECS`).
    load_secs: &'static str,
    /// GetUser calls per client phase (`MANTA_BENCH_CALLS`) and for the Python loop.
    calls: u32,
    /// node_idle: starts and idle window.
    node_starts: &'static str,
    node_idle_secs: &'static str,
    /// nodes_heartbeat: node counts and window.
    nodes: &'static str,
    nodes_window_secs: &'static str,
}

const QUICK: Limits = Limits {
    warm_up: "0.5",
    measure: "1",
    load_secs: "1",
    calls: 1_000,
    node_starts: "5",
    node_idle_secs: "10",
    nodes: "1000",
    nodes_window_secs: "5",
};

const FULL: Limits = Limits {
    warm_up: "1",
    measure: "3",
    load_secs: "3",
    calls: 5_000,
    node_starts: "20",
    node_idle_secs: "30",
    nodes: "1000,5000,10000",
    nodes_window_secs: "15",
};

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// What is measured, e.g. "JWT verify EdDSA".
    pub(crate) measure: String,
    /// The figure, in `unit`.
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// The target from the issues ("< 100 µs"), or empty.
    pub(crate) target: String,
    /// A ratio or comparison that gives the figure its meaning, or empty.
    pub(crate) note: String,
}

fn row(measure: impl Into<String>, value: f64, unit: &'static str) -> Row {
    Row {
        measure: measure.into(),
        value,
        unit,
        target: String::new(),
        note: String::new(),
    }
}

impl Row {
    fn target(mut self, t: impl Into<String>) -> Row {
        self.target = t.into();
        self
    }

    fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
}

/// A section of the report: one benchmark's rows, or why it was skipped.
#[derive(Debug)]
struct Section {
    name: &'static str,
    command: String,
    seconds: f64,
    outcome: Result<Vec<Row>, String>,
}

/// Runs `cargo xtask bench`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let limits = if options.quick { QUICK } else { FULL };
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| crate::demo::target_dir(root).join("bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    println!(
        "bench: {} run; raw output in {}",
        if options.quick { "quick" } else { "full" },
        out.display()
    );
    println!("bench: building release binaries and benches (this is the slow part) ...");
    crate::cargo(
        root,
        &[
            "build",
            "--release",
            "--quiet",
            "-p",
            "manta-manager",
            "-p",
            "manta-node",
        ],
    )?;
    let release = crate::demo::target_dir(root).join("release");
    let criterion_args = [
        "--warm-up-time",
        limits.warm_up,
        "--measurement-time",
        limits.measure,
    ];
    let mut sections = Vec::new();

    sections.push(section(&out, "manta-auth verify", || {
        let text = cargo_bench(
            root,
            &out,
            "verify",
            "manta-auth",
            "verify",
            &criterion_args,
            &[],
        )?;
        Ok(auth_rows(&text))
    }));
    sections.push(section(&out, "manta-config load", || {
        let text = cargo_bench(
            root,
            &out,
            "load",
            "manta-config",
            "load",
            &criterion_args,
            &[],
        )?;
        Ok(config_rows(&text))
    }));
    sections.push(section(&out, "manta-tls handshakes", || {
        let text = cargo_bench(
            root,
            &out,
            "handshake",
            "manta-tls",
            "handshake",
            &criterion_args,
            &[],
        )?;
        Ok(tls_rows(&text))
    }));
    sections.push(section(&out, "manager GetUser", || {
        let text = cargo_bench(
            root,
            &out,
            "manager_get_user",
            "manta-manager",
            "get_user",
            &criterion_args,
            &[("MANTA_BENCH_SECS", limits.load_secs)],
        )?;
        Ok(manager_rows(&text))
    }));
    sections.push(section(&out, "client vs Python SDK", || {
        client_vs_python(root, &out, &release, limits.calls)
    }));
    sections.push(section(&out, "node agent", || {
        let text = run_logged(
            &out,
            "node_idle",
            cargo_cmd(root)
                .args([
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "xtask",
                    "--example",
                    "node_idle",
                ])
                .env("NODE_STARTS", limits.node_starts)
                .env("NODE_IDLE_SECS", limits.node_idle_secs),
        )?;
        Ok(node_rows(&text))
    }));
    sections.push(section(&out, "manager with heartbeating nodes", || {
        let text = cargo_bench(
            root,
            &out,
            "nodes_heartbeat",
            "manta-manager",
            "nodes_heartbeat",
            &[],
            &[
                ("MANTA_BENCH_NODES", limits.nodes),
                ("MANTA_BENCH_WINDOW_SECS", limits.nodes_window_secs),
            ],
        )?;
        Ok(heartbeat_rows(&text))
    }));

    let machine = machine();
    let md = markdown(&sections, &machine, options.quick);
    let js = report_json(&sections, &machine, options.quick);
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&js)?)?;
    println!("\n{md}");
    println!(
        "bench: wrote {} and {}",
        out.join("report.md").display(),
        out.join("report.json").display()
    );
    let failed: Vec<&str> = sections
        .iter()
        .filter(|s| s.outcome.as_ref().is_ok_and(Vec::is_empty))
        .map(|s| s.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "these benches printed no figure the report understands: {}; see their logs in {}",
            failed.join(", "),
            out.display()
        );
    }
    Ok(())
}

/// Runs one section, timing it and turning an error into a "skipped" line.
fn section(out: &Path, name: &'static str, f: impl FnOnce() -> Result<Vec<Row>>) -> Section {
    println!("bench: {name} ...");
    let started = Instant::now();
    let outcome = f().map_err(|e| format!("{e:#}"));
    let seconds = started.elapsed().as_secs_f64();
    match &outcome {
        Ok(rows) => println!("bench: {name}: {} figures in {seconds:.0} s", rows.len()),
        Err(e) => println!("bench: {name}: skipped: {e}"),
    }
    Section {
        name,
        command: format!("see {}", out.display()),
        seconds,
        outcome,
    }
}

fn cargo_cmd(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

/// `cargo bench -p PACKAGE --bench BENCH -- ARGS` with `env`, logged to `out/LOG.log`.
fn cargo_bench(
    root: &Path,
    out: &Path,
    log: &str,
    package: &str,
    bench: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String> {
    let mut c = cargo_cmd(root);
    c.args(["bench", "--quiet", "-p", package, "--bench", bench, "--"])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run_logged(out, log, &mut c)
}

/// Runs `cmd`, writing its standard output to `out/NAME.log` (standard error passes through
/// so build progress stays visible), and returns the output; fails on a non-zero exit.
fn run_logged(out: &Path, name: &str, cmd: &mut Command) -> Result<String> {
    let shown = crate::demo::shown(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(out.join(format!("{name}.log")), &text)?;
    if !output.status.success() {
        bail!("{shown} exited with {}", output.status);
    }
    Ok(text)
}

/// Criterion's estimates from its text output: bench name → mean time in seconds.
pub(crate) fn criterion_times(text: &str) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let (before, after) = match line.split_once("time:") {
            Some(parts) => parts,
            None => {
                if !line.starts_with(' ') && !line.trim().is_empty() {
                    line.trim().clone_into(&mut name);
                }
                continue;
            }
        };
        if !before.trim().is_empty() {
            before.trim().clone_into(&mut name);
        }
        // `[low unit mid unit high unit]`: the middle estimate.
        let words: Vec<&str> = after
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split_whitespace()
            .collect();
        if let [_, _, mid, unit, ..] = words.as_slice()
            && let (Ok(v), Some(scale)) = (mid.parse::<f64>(), unit_scale(unit))
        {
            found.push((name.clone(), v * scale));
        }
    }
    found
}

fn unit_scale(unit: &str) -> Option<f64> {
    Some(match unit {
        "ps" => 1e-12,
        "ns" => 1e-9,
        "µs" | "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return None,
    })
}

fn time_of(times: &[(String, f64)], name: &str) -> Option<f64> {
    times.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
}

/// A number following `key` in `line` (e.g. `ratio 0.981`), ignoring a unit suffix.
pub(crate) fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let token: String = rest
        .trim_start_matches([' ', '=', ':'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    token.parse().ok()
}

/// A duration printed with Rust's `{:?}` (`1.234ms`, `850.2µs`) in seconds.
fn debug_duration(text: &str) -> Option<f64> {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &text[digits.len()..];
    let unit: String = unit.chars().take_while(|c| c.is_alphabetic()).collect();
    Some(digits.parse::<f64>().ok()? * unit_scale(&unit)?)
}

fn auth_rows(text: &str) -> Vec<Row> {
    let times = criterion_times(text);
    let mut rows = Vec::new();
    for alg in ["HS256", "EdDSA", "ES256"] {
        let ours = time_of(&times, &format!("verify/{alg}/manta_auth::Verifier"));
        let bare = time_of(&times, &format!("verify/{alg}/jsonwebtoken::decode"));
        let interleaved = text
            .lines()
            .find(|l| l.starts_with(&format!("verify/{alg}/interleaved")))
            .and_then(|l| number_after(l, "throughput ratio"));
        if let Some(t) = ours {
            let mut r =
                row(format!("JWT verify {alg}"), t * 1e6, "µs").target("throughput ratio ≥ 0.95");
            if let Some(b) = bare {
                r = r.note(format!(
                    "jsonwebtoken {:.2} µs; throughput ratio {:.3} (criterion), {} (interleaved)",
                    b * 1e6,
                    b / t,
                    interleaved.map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
                ));
            }
            rows.push(r);
        }
    }
    if let Some(t) = time_of(&times, "verify/cached_hit") {
        let ed = time_of(&times, "verify/EdDSA/manta_auth::Verifier");
        rows.push(
            row("JWT verify, cache hit (EdDSA token)", t * 1e6, "µs").note(
                ed.map_or_else(String::new, |e| {
                    format!("{:.1} × faster than a full EdDSA verify", e / t)
                }),
            ),
        );
    }
    rows
}

fn config_rows(text: &str) -> Vec<Row> {
    criterion_times(text)
        .into_iter()
        .filter(|(n, _)| n.starts_with("node_config_"))
        .map(|(n, t)| {
            let what = if n.contains("file") {
                "from a file"
            } else {
                "from a string"
            };
            row(
                format!("node config load + substitute + validate, {what}"),
                t * 1e6,
                "µs",
            )
            .target("< 100 µs")
            .note(format!("{:.0} × under the target", 100e-6 / t))
        })
        .collect()
}

fn tls_rows(text: &str) -> Vec<Row> {
    let times = criterion_times(text);
    let find = |want_mtls: bool| {
        times
            .iter()
            .find(|(n, _)| n.starts_with("handshake/") && n.contains("mtls") == want_mtls)
            .map(|(n, t)| (n.clone(), *t))
    };
    let mut rows = Vec::new();
    if let (Some((mn, m)), Some((tn, t))) = (find(true), find(false)) {
        rows.push(
            row(
                "full mTLS handshake (both sides, one core)",
                1.0 / m,
                "handshakes/s",
            )
            .note(format!("{:.2} ms each ({mn})", m * 1e3)),
        );
        rows.push(
            row(
                "full TLS handshake, no client auth",
                1.0 / t,
                "handshakes/s",
            )
            .note(format!(
                "{:.2} ms each ({tn}); mTLS costs {:.2} × TLS",
                t * 1e3,
                m / t
            )),
        );
    }
    rows
}

fn manager_rows(text: &str) -> Vec<Row> {
    let times = criterion_times(text);
    let mut rows = Vec::new();
    if let (Some(a), Some(o)) = (
        time_of(&times, "get_user/authorized"),
        time_of(&times, "get_user/auth_disabled"),
    ) {
        rows.push(
            row(
                "manager GetUser latency, authorized (one call at a time)",
                a * 1e6,
                "µs",
            )
            .note(format!(
                "auth disabled {:.1} µs; difference {:+.1} µs (noise when negative)",
                o * 1e6,
                (a - o) * 1e6
            )),
        );
    }
    for line in text.lines() {
        if line.starts_with("throughput") {
            if let (Some(w), Some(wo), Some(r)) = (
                number_after(line, "authorized"),
                number_after(line, "auth disabled"),
                number_after(line, "ratio"),
            ) {
                rows.push(
                    row("manager GetUser throughput, authorized", w, "calls/s")
                        .note(format!("auth disabled {wo:.0}/s; ratio {r:.3}")),
                );
            }
        } else if let Some(rest) = line.strip_prefix("latency at half peak") {
            let name = if rest.contains("auth disabled") {
                "auth disabled"
            } else {
                "authorized"
            };
            let p50 = rest.split("p50 ").nth(1).and_then(debug_duration);
            let p99 = rest.split("p99 ").nth(1).and_then(debug_duration);
            if let (Some(p50), Some(p99)) = (p50, p99) {
                rows.push(
                    row(
                        format!("manager GetUser p99 at half peak, {name}"),
                        p99 * 1e3,
                        "ms",
                    )
                    .note(format!("p50 {:.2} ms", p50 * 1e3)),
                );
            }
        }
    }
    rows
}

fn node_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.starts_with("process start -> registered") {
            if let (Some(med), Some(p95)) =
                (number_after(line, "median="), number_after(line, "p95="))
            {
                rows.push(
                    row("agent process start → registered (median)", med, "ms")
                        .target("< 50 ms")
                        .note(format!("p95 {p95:.1} ms")),
                );
            }
        } else if line.starts_with("Agent::start -> registered") {
            if let Some(med) = number_after(line, "median=") {
                rows.push(row(
                    "agent in-process start → registered (median)",
                    med,
                    "ms",
                ));
            }
        } else if line.starts_with("idle over") {
            if let Some(cpu) = number_after(line, "cpu") {
                rows.push(
                    row("agent idle CPU (5 s heartbeat)", cpu, "% of a core").target("< 0.1 %"),
                );
            }
            if let (Some(rss), Some(hwm)) =
                (number_after(line, "VmRSS"), number_after(line, "VmHWM"))
            {
                rows.push(
                    row("agent idle RSS", rss, "MB")
                        .target("< 10 MB")
                        .note(format!("peak {hwm:.1} MB")),
                );
            }
        }
    }
    rows
}

fn heartbeat_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<f64> = line
            .split_whitespace()
            .map_while(|w| w.parse().ok())
            .collect();
        if let [nodes, rate, failed, cpu, rss, peak] = cols.as_slice() {
            let (t_cpu, t_rss) = if (*nodes - 10_000.0).abs() < 0.5 {
                ("≤ 25 %", "≤ 200 MB")
            } else {
                ("", "")
            };
            rows.push(
                row(
                    format!("manager CPU, {nodes:.0} nodes heartbeating every 5 s"),
                    *cpu,
                    "% of a core",
                )
                .target(t_cpu)
                .note(format!("{rate:.0} heartbeats/s, {failed:.0} failed")),
            );
            rows.push(
                row(format!("manager RSS, {nodes:.0} nodes"), *rss, "MB")
                    .target(t_rss)
                    .note(format!("peak {peak:.1} MB")),
            );
        }
    }
    rows
}

/// A manager process serving a temporary store, killed on drop.
struct Served {
    child: Child,
    addr: String,
    token: SecretString,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release manager on 127.0.0.1 (h2c, as the published SDK connects) with a user
/// holding `user:read` and an API token for it.
fn serve_release(release: &Path) -> Result<Served> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_path_buf();
    let manager = release.join("manta-manager");
    let admin = |args: &[&str]| -> Result<String> {
        let out = Command::new(&manager)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("MANTA_MANAGER_CONFIG")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "manta-manager {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // `serve` first: it creates the store, and admin commands only open an existing one.
    let mut child = Command::new(&manager)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "serve",
            "--user-listen",
            "127.0.0.1:0",
            "--node-listen",
            "127.0.0.1:0",
        ])
        .env("MANTA_LOG", "warn")
        .env_remove("MANTA_MANAGER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .context("the manager's stdout is piped")?;
    let mut served = Served {
        child,
        addr: String::new(),
        token: SecretString::from(String::new()),
        _dir: dir,
    };
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(addr) = line.strip_prefix("user api listening on ") {
            served.addr = addr.trim().to_owned();
            admin(&["user", "add", "bench", "--scopes", "user:read"])?;
            served.token = SecretString::from(admin(&[
                "token", "issue", "--user", "bench", "--ttl", "1h",
            ])?);
            return Ok(served);
        }
    }
    bail!("the manager exited before listening")
}

/// The published SDK's GetUser loop, timed in Python itself.
const PYTHON_LOOP: &str = r#"
import sys, time, warnings
warnings.simplefilter("ignore")
from manta import UserAPI
host, port, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
token = sys.stdin.readline().strip()
api = UserAPI(token=token, host=host, port=port)
api.get_user()
start = time.perf_counter()
for _ in range(calls):
    api.get_user()
secs = time.perf_counter() - start
print(f"python sdk sequential: {calls} calls in {secs:.3f} s = {calls / secs:.0f} calls/s ({secs * 1e6 / calls:.1f} us each)")
"#;

fn client_vs_python(root: &Path, out: &Path, release: &Path, calls: u32) -> Result<Vec<Row>> {
    let served = serve_release(release)?;
    let calls_text = calls.to_string();
    let text = {
        let mut c = cargo_cmd(root);
        c.args([
            "bench",
            "--quiet",
            "-p",
            "manta-client",
            "--bench",
            "get_user",
        ])
        .env("MANTA_BENCH_ADDR", &served.addr)
        .env("MANTA_BENCH_TOKEN", served.token.expose_secret())
        .env("MANTA_BENCH_CALLS", &calls_text);
        run_logged(out, "client_get_user", &mut c)?
    };
    let mut rows = Vec::new();
    let rust = text
        .lines()
        .find(|l| l.starts_with("get_user sequential"))
        .and_then(|l| number_after(l, "="));
    let bare = text
        .lines()
        .find(|l| l.starts_with("bare tonic client sequential"))
        .and_then(|l| number_after(l, "="));
    for line in text
        .lines()
        .filter(|l| l.contains("in flight on one connection"))
    {
        if let (Some(n), Some(rate)) = (
            line.split_whitespace()
                .nth(1)
                .and_then(|w| w.parse::<u32>().ok()),
            number_after(line, "="),
        ) {
            rows.push(row(
                format!("Rust UserApi GetUser, {n} in flight on one connection"),
                rate,
                "calls/s",
            ));
        }
    }
    let python_venv = crate::demo::target_dir(root).join("interop-venv/bin/python");
    let python = if python_venv.exists() {
        let (host, port) = served.addr.rsplit_once(':').context("manager address")?;
        let mut child = Command::new(&python_venv)
            .args(["-c", PYTHON_LOOP, host, port, &calls_text])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            writeln!(stdin, "{}", served.token.expose_secret())?;
        }
        let output = wait_bounded(child, Duration::from_secs(120))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        std::fs::write(out.join("python_get_user.log"), &text)?;
        if output.status.success() {
            text.lines()
                .find(|l| l.starts_with("python sdk sequential"))
                .and_then(|l| number_after(l, "="))
                .map(Ok)
                .unwrap_or_else(|| Err("the Python loop printed no figure".to_owned()))
        } else {
            Err(format!(
                "the Python loop failed: {}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ))
        }
    } else {
        Err(format!(
            "no published SDK venv at {}; create it with `cargo test -p manta-manager --test it interop`",
            python_venv.display()
        ))
    };
    if let Some(r) = rust {
        let mut line = row("Rust UserApi GetUser, sequential", r, "calls/s");
        line = match &python {
            Ok(p) => line.note(format!("Python SDK {p:.0}/s: Rust {:.1} ×", r / p)),
            Err(why) => line.note(format!("Python SDK not measured: {why}")),
        };
        if let Some(b) = bare {
            line.note = format!("{}; bare tonic {b:.0}/s", line.note)
                .trim_start_matches("; ")
                .to_owned();
        }
        rows.insert(0, line);
    }
    if let Ok(p) = python {
        rows.insert(
            1.min(rows.len()),
            row("published Python SDK GetUser, sequential", p, "calls/s"),
        );
    }
    Ok(rows)
}

/// Waits for `child` at most `limit`, killing it after that.
fn wait_bounded(mut child: Child, limit: Duration) -> Result<std::process::Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

/// The machine the figures come from.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| number_after(l, "MemTotal:"))
        })
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    json!({
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let whole = format!("{v:.0}");
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn markdown(sections: &[Section], machine: &Value, quick: bool) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# cargo xtask bench{}\n\nMachine: {} CPUs ({}), {} GiB memory, {}/{}.\n",
        if quick { " --quick" } else { "" },
        machine["cpus"],
        machine["cpu_model"].as_str().unwrap_or_default(),
        machine["memory_gib"],
        machine["os"].as_str().unwrap_or_default(),
        machine["arch"].as_str().unwrap_or_default(),
    );
    let _ = writeln!(
        md,
        "| bench | measure | value | unit | target | ratio / note |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---|---|");
    for s in sections {
        match &s.outcome {
            Ok(rows) => {
                for r in rows {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        s.name,
                        r.measure,
                        fmt_value(r.value),
                        r.unit,
                        r.target,
                        r.note
                    );
                }
            }
            Err(why) => {
                let _ = writeln!(
                    md,
                    "| {} | skipped | | | | {} |",
                    s.name,
                    why.replace('|', "/")
                );
            }
        }
    }
    let total: f64 = sections.iter().map(|s| s.seconds).sum();
    let _ = writeln!(md, "\nTotal bench time {total:.0} s (builds included).");
    md
}

fn report_json(sections: &[Section], machine: &Value, quick: bool) -> Value {
    json!({
        "quick": quick,
        "machine": machine,
        "sections": sections.iter().map(|s| json!({
            "name": s.name,
            "seconds": (s.seconds * 10.0).round() / 10.0,
            "logs": s.command,
            "skipped": s.outcome.as_ref().err(),
            "rows": s.outcome.as_ref().map(|rows| rows.iter().map(|r| json!({
                "measure": r.measure,
                "value": r.value,
                "unit": r.unit,
                "target": r.target,
                "note": r.note,
            })).collect::<Vec<_>>()).unwrap_or_default(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_unknown_ones() {
        let o = Options::parse(&["--quick", "--out", "/tmp/b"]).unwrap();
        assert!(o.quick);
        assert_eq!(o.out, Some(PathBuf::from("/tmp/b")));
        let err = Options::parse(&["--fast"]).unwrap_err().to_string();
        assert!(err.contains("--fast") && err.contains("--quick"), "{err}");
        let err = Options::parse(&["--out"]).unwrap_err().to_string();
        assert!(err.contains("needs a directory"), "{err}");
    }

    /// Criterion prints short names on the `time:` line and long ones on the line before.
    #[test]
    fn criterion_output_is_read_in_both_layouts() {
        let text = "\
verify/EdDSA/manta_auth::Verifier
                        time:   [40.100 µs 41.250 µs 42.000 µs]
                        change: [-1.0% +0.5% +2.0%]
verify/cached_hit       time:   [180.00 ns 185.50 ns 190.00 ns]
Found 3 outliers among 60 measurements (5.00%)
handshake/mtls          time:   [1.0000 ms 1.2000 ms 1.4000 ms]
                        thrpt:  [714.29 elem/s 833.33 elem/s 1000.0 elem/s]
";
        let t = criterion_times(text);
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!(t[0].0, "verify/EdDSA/manta_auth::Verifier");
        assert!((t[0].1 - 41.25e-6).abs() < 1e-12);
        assert_eq!(t[1].0, "verify/cached_hit");
        assert!((t[1].1 - 185.5e-9).abs() < 1e-15);
        assert_eq!(t[2].0, "handshake/mtls");
        assert!((t[2].1 - 1.2e-3).abs() < 1e-12);
    }

    #[test]
    fn auth_rows_give_ratios_against_jsonwebtoken() {
        let text = "\
verify/HS256/jsonwebtoken::decode
                        time:   [1.0 µs 2.0 µs 3.0 µs]
verify/HS256/manta_auth::Verifier
                        time:   [1.0 µs 2.5 µs 3.0 µs]
verify/HS256/interleaved: jsonwebtoken 2.00 us, manta_auth 2.40 us, throughput ratio 0.833
";
        let rows = auth_rows(text);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].measure, "JWT verify HS256");
        assert!((rows[0].value - 2.5).abs() < 1e-9);
        assert!(
            rows[0].note.contains("0.800 (criterion)"),
            "{}",
            rows[0].note
        );
        assert!(
            rows[0].note.contains("0.833 (interleaved)"),
            "{}",
            rows[0].note
        );
    }

    #[test]
    fn manager_lines_are_read() {
        let text = "\
throughput (closed loop, 64 in flight, best of 3): authorized 9000/s, auth disabled 10000/s, ratio 0.900
latency at half peak (4500/s), authorized: p50 1.5ms, p99 3.25ms over 13500 calls
latency at half peak (5000/s), auth disabled: p50 900µs, p99 2.1ms over 15000 calls
";
        let rows = manager_rows(text);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].value, 9000.0);
        assert!(rows[0].note.contains("ratio 0.900"));
        assert!((rows[1].value - 3.25).abs() < 1e-9, "{rows:?}");
        assert!(rows[2].measure.ends_with("auth disabled"));
        assert!(rows[2].note.contains("p50 0.90 ms"), "{rows:?}");
    }

    #[test]
    fn node_and_heartbeat_lines_are_read() {
        let text = "\
process start -> registered: n=20 min=20.1 ms median=28.4 ms p95=32.4 ms max=40.0 ms
Agent::start -> registered (in-process): n=20 min=1.0 ms median=2.2 ms p95=3.1 ms max=4.0 ms
idle over 30 s (5 s heartbeat): cpu 0.000 % of a core (0 ticks at 100 Hz), VmRSS 6.9 MB, VmHWM 7.1 MB, nodes online 1
";
        let rows = node_rows(text);
        let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
        assert_eq!(values, [28.4, 2.2, 0.0, 6.9]);
        assert!(rows[3].note.contains("7.1"));
        let text = "nodes  heartbeats/s  failed  manager CPU (% of one core)  RSS MB  peak RSS MB\n10000          2000       0                         12.5    80.0        95.0\n";
        let rows = heartbeat_rows(text);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].value, 12.5);
        assert_eq!(rows[0].target, "≤ 25 %");
        assert_eq!(rows[1].value, 80.0);
    }

    #[test]
    fn a_skipped_bench_is_in_the_table_with_its_reason() {
        let sections = [Section {
            name: "client vs Python SDK",
            command: String::new(),
            seconds: 1.0,
            outcome: Err("no venv | here".into()),
        }];
        let md = markdown(&sections, &machine(), true);
        assert!(
            md.contains("| client vs Python SDK | skipped | | | | no venv / here |"),
            "{md}"
        );
        let js = report_json(&sections, &machine(), true);
        assert_eq!(js["sections"][0]["skipped"], "no venv | here");
    }

    /// The client bench's and the Python loop's lines give calls per second.
    #[test]
    fn sequential_rates_are_read() {
        let rust = "get_user sequential: 5000 calls in 1.293 s = 3868 calls/s (258.6 us each)";
        assert_eq!(number_after(rust, "="), Some(3868.0));
        let python = "python sdk sequential: 5000 calls in 6.780 s = 737 calls/s (1356.0 us each)";
        assert_eq!(number_after(python, "="), Some(737.0));
    }

    #[test]
    fn values_are_printed_readably() {
        assert_eq!(fmt_value(12345.6), "12,346");
        assert_eq!(fmt_value(1000.0), "1,000");
        assert_eq!(fmt_value(41.25), "41.2");
        assert_eq!(fmt_value(7.9), "7.90");
        assert_eq!(fmt_value(0.5), "0.500");
    }
}
