//! Manager hardening (issue 14): the sign-in limiter under concurrent and anonymous abuse,
//! unknown-method floods, audit retention, terminal-safe admin output, and the data
//! directory's mode. Attackers and the real user connect from different loopback addresses
//! (127.0.0.2 and 127.0.0.1), which Linux routes without setup.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use manta_manager::audit::{self, Decision, Retention, Who};
use manta_manager::store::{AuditEvent, AuditQuery, SqliteStore, Store};
use manta_proto::core::user_services::SignInRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::harness::{Manager, ManagerExt as _};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A client whose connection comes from `local`.
async fn users_from(addr: SocketAddr, local: IpAddr) -> UserManagementClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .local_address(Some(local))
        .connect()
        .await
        .unwrap();
    UserManagementClient::new(channel)
}

fn sign_in(name: &str, password: &str) -> SignInRequest {
    SignInRequest {
        username: name.into(),
        password: password.into(),
    }
}

/// Resident memory of this test process in KiB (the in-process manager included).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The database and its WAL, in bytes.
fn store_bytes(dir: &std::path::Path) -> u64 {
    ["manager.db", "manager.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn audit_rows(m: &Manager) -> Vec<AuditEvent> {
    m.core.audit().flush();
    m.core
        .store()
        .query_audit(&AuditQuery {
            limit: 1_000_000,
            ..AuditQuery::default()
        })
        .unwrap()
}

#[tokio::test]
async fn thirty_concurrent_guesses_at_one_user_check_at_most_the_limit_of_passwords() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    let c = users_from(m.user_addr, ATTACKER).await;
    let guesses = (0..30).map(|i| {
        let mut c = c.clone();
        async move { c.sign_in(sign_in("alice", &format!("guess-{i}"))).await }
    });
    let results = join_all(guesses).await;
    // Every UNAUTHENTICATED answer is a password argon2 checked; the rest were refused
    // before hashing.
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::Unauthenticated))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::ResourceExhausted))
        .count();
    assert_eq!(checked + refused, 30, "{results:?}");
    assert!(
        checked <= 5,
        "{checked} passwords checked against a limit of 5"
    );
    m.stop().await;
}

#[tokio::test]
async fn an_anonymous_attackers_failures_do_not_lock_the_real_user_out() {
    let m = Manager::start().await;
    m.add_user("admin", "the-real-password", &["admin:*"]);
    let mut attacker = users_from(m.user_addr, ATTACKER).await;
    for i in 0..10 {
        let _ = attacker
            .sign_in(sign_in("admin", &format!("guess-{i}")))
            .await;
    }
    let err = attacker
        .sign_in(sign_in("admin", "the-real-password"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::ResourceExhausted,
        "the attacker is locked out"
    );
    let mut admin = users_from(m.user_addr, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let user = admin
        .sign_in(sign_in("admin", "the-real-password"))
        .await
        .expect("the administrator signs in from another address")
        .into_inner();
    assert!(user.token.is_some());
    m.stop().await;
}

/// Calls `path` (any text the URI allows) with an empty message.
async fn call_path(channel: Channel, path: String) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    grpc.unary(tonic::Request::new(()), path, codec)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn unknown_methods_are_audited_under_a_few_fixed_names() {
    let m = Manager::start().await;
    let ch = m.channel().await;
    let long = "x".repeat(8 * 1024);
    for path in [
        format!("/evil.Service/{long}"),
        format!("/{long}/1"),
        format!("/core.user_services.UserManagement/{long}"),
        format!("/grpc.reflection.v1.ServerReflection/{long}"),
    ] {
        let status = call_path(ch.clone(), path).await;
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().len() < 400, "the path is not echoed whole");
    }
    let rows = audit_rows(&m);
    let mut methods: Vec<&str> = rows.iter().map(|e| e.method.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    assert_eq!(
        methods,
        [
            "/core.user_services.UserManagement/<unknown>",
            "/grpc.reflection.v1.ServerReflection/<unknown>",
            "<unknown service>",
        ],
        "{rows:?}"
    );
    assert_eq!(
        rows.iter().map(|e| e.count).sum::<u64>(),
        4,
        "every call is counted"
    );
    m.stop().await;
}

/// The bounded abuse test: a sign-in flood and an unknown-method flood from one address
/// while the real user signs in from another. States and checks the bounds on memory,
/// store size and argon2 work; prints the figures (run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_stay_within_memory_store_and_work_bounds_and_the_user_gets_in() {
    const SIGN_INS: usize = 1_000;
    const UNKNOWN_CALLS: usize = 2_000;
    let m = Manager::start().await;
    m.add_user("alice", "alice-password", &[]);
    // Warm up: the first argon2 check allocates its 19 MiB; count it in the baseline.
    users_from(m.user_addr, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .sign_in(sign_in("alice", "alice-password"))
        .await
        .unwrap();
    let rss_before = rss_kib();
    let store_before = store_bytes(m.data_dir());
    let checks_before = m.core.sign_in_limiter().evaluations();

    let attacker = users_from(m.user_addr, ATTACKER).await;
    let attacker_channel = Endpoint::from_shared(format!("http://{}", m.user_addr))
        .unwrap()
        .local_address(Some(ATTACKER))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let sign_in_flood = tokio::spawn(async move {
        let calls = (0..SIGN_INS).map(|i| {
            let mut c = attacker.clone();
            // Half at the real user, half at distinct made-up names.
            let name = if i % 2 == 0 {
                "alice".to_owned()
            } else {
                format!("u{i}-{}", "n".repeat(40))
            };
            async move { c.sign_in(sign_in(&name, "wrong-password")).await.is_ok() }
        });
        join_all(calls).await
    });
    let unknown_flood = tokio::spawn(async move {
        let calls = (0..UNKNOWN_CALLS).map(|i| {
            let path = format!("/flood.S{i}/{i}{}", "p".repeat(8 * 1024));
            call_path(attacker_channel.clone(), path)
        });
        join_all(calls).await
    });
    // The real user signs in while both floods run.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let user_started = Instant::now();
    let signed_in = users_from(m.user_addr, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .sign_in(sign_in("alice", "alice-password"))
        .await;
    let user_latency = user_started.elapsed();
    let successes = sign_in_flood.await.unwrap();
    let unknown = unknown_flood.await.unwrap();
    let flood_time = started.elapsed();
    let rows = audit_rows(&m);

    let rss_growth_kib = rss_kib().saturating_sub(rss_before);
    let store_growth = store_bytes(m.data_dir()).saturating_sub(store_before);
    let checks = m.core.sign_in_limiter().evaluations() - checks_before;
    let (peers, pairs, users) = m.core.sign_in_limiter().entries();
    eprintln!(
        "abuse figures: {SIGN_INS} sign-ins + {UNKNOWN_CALLS} unknown 8 KiB paths in {flood_time:?}; \
         argon2 checks {checks}; limiter entries peers={peers} pairs={pairs} users={users}; \
         audit rows {}; store growth {store_growth} B; RSS growth {rss_growth_kib} KiB; \
         real user's sign-in {user_latency:?}",
        rows.len()
    );

    signed_in.expect("the real user signs in during the floods");
    assert!(successes.iter().all(|ok| !ok));
    assert!(unknown.iter().all(|s| s.code() == Code::Unimplemented));
    // The attacker's address gets its budget of 30 attempts per window, and no more; the
    // real user's sign-in is the 31st check.
    assert!(checks <= 31, "{checks} passwords checked");
    assert!(
        peers <= 2 && pairs <= 31 && users <= 31,
        "{peers} {pairs} {users}"
    );
    // A few rows per write window, not one per call: well under 1 MiB of store.
    assert!(rows.len() < 200, "{} audit rows", rows.len());
    assert!(
        store_growth < 1024 * 1024,
        "store grew {store_growth} bytes"
    );
    // Argon2 buffers (19 MiB, one per checker thread) and the floods' own connections and
    // requests, client side included: under 192 MiB whatever the floods send.
    assert!(rss_growth_kib < 192 * 1024, "RSS grew {rss_growth_kib} KiB");
    m.stop().await;
}

/// Runs futures as concurrent tasks and collects their outputs in order.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn event(at_ms: i64, method: &str) -> AuditEvent {
    AuditEvent {
        at_ms,
        last_at_ms: at_ms,
        count: 1,
        subject: None,
        token_id: None,
        method: method.into(),
        resource: None,
        allowed: false,
        reason: "r".into(),
        peer: None,
        client_identity: None,
    }
}

#[test]
fn pruning_keeps_the_newest_rows_within_age_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("manager.db")).unwrap();
    let day = 86_400_000;
    let now = 100 * day;
    let events: Vec<AuditEvent> = (0..100)
        .map(|i| event(now - (100 - i) * day, &format!("/m{i}")))
        .collect();
    store.append_audit(&events).unwrap();
    let thirty_days = Retention {
        max_age: Some(Duration::from_secs(30 * 86_400)),
        max_rows: None,
    };
    // Rows 0..70 began more than 30 days ago.
    assert_eq!(thirty_days.prune(&store, now).unwrap(), 70);
    let ten_rows = Retention {
        max_age: None,
        max_rows: Some(10),
    };
    assert_eq!(ten_rows.prune(&store, now).unwrap(), 20);
    let left = store
        .query_audit(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .unwrap();
    let methods: Vec<String> = left.into_iter().map(|e| e.method).collect();
    let newest: Vec<String> = (90..100).rev().map(|i| format!("/m{i}")).collect();
    assert_eq!(methods, newest);
}

#[test]
fn the_audit_writer_enforces_the_row_limit_as_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("manager.db")).unwrap());
    let (sink, writer) = audit::start_with(
        store.clone(),
        Retention {
            max_age: None,
            max_rows: Some(50),
        },
    );
    for round in 0..5 {
        for i in 0..100 {
            sink.record(Decision {
                who: Who::Nobody,
                method: format!("/s/M{round}-{i}").into(),
                resource: None,
                allowed: false,
                reason: "r".into(),
                peer: None,
                client: None,
            });
        }
        sink.flush();
        let rows = store
            .query_audit(&AuditQuery {
                limit: 10_000,
                ..AuditQuery::default()
            })
            .unwrap();
        assert!(rows.len() <= 50, "round {round}: {} rows", rows.len());
        assert_eq!(rows[0].method, format!("/s/M{round}-99"), "the newest stay");
    }
    drop(sink);
    writer.join();
}

#[test]
fn the_default_retention_is_on() {
    let r = Retention::default();
    assert!(r.max_age.is_some() && r.max_rows.is_some());
}

#[test]
fn the_data_directory_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new").join("data");
    drop(SqliteStore::open(&data.join("manager.db")).unwrap());
    for d in [&data, &dir.path().join("new")] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", d.display());
    }
}

/// Runs the admin command line on a data directory and returns what it printed.
fn admin(dir: &std::path::Path, args: &[&str]) -> String {
    use clap::Parser as _;
    // Admin commands need the store a manager leaves behind; they never create one.
    drop(SqliteStore::open(&dir.join("manager.db")).unwrap());
    let mut all = vec!["manta-manager", "--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let cli = manta_manager::cli::Cli::try_parse_from(all).unwrap();
    let mut out = Vec::new();
    manta_manager::cli::run(cli, &mut &b""[..], &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Whether text holds anything a terminal would act on rather than show.
fn has_terminal_controls(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
}

#[test]
fn admin_listings_escape_what_users_and_callers_chose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    admin(d, &["user", "add", "ops", "--scopes", "cluster:*"]);
    admin(
        d,
        &[
            "token",
            "issue",
            "--user",
            "ops",
            "--name",
            "\u{1b}[2J\u{1b}[1;1Hall clear",
        ],
    );
    let tokens = admin(d, &["token", "list"]);
    assert!(!has_terminal_controls(&tokens), "{tokens:?}");
    assert!(
        tokens.contains("name=\\u{1b}[2J\\u{1b}[1;1Hall clear"),
        "{tokens}"
    );

    admin(d, &["cluster", "create", "prod-\u{202e}gnp.exe"]);
    let clusters = admin(d, &["cluster", "list"]);
    assert!(!has_terminal_controls(&clusters), "{clusters:?}");
    assert!(clusters.contains("prod-\\u{202e}gnp.exe"), "{clusters}");

    let store = SqliteStore::open(&d.join("manager.db")).unwrap();
    let mut e = event(manta_now_ms(), "/core.user_services.UserManagement/GetUser");
    e.resource = Some("\u{1b}]0;owned\u{7}".into());
    e.reason = "\u{9b}31mred".into();
    store.append_audit(&[e]).unwrap();
    let trail = admin(d, &["audit"]);
    assert!(!has_terminal_controls(&trail), "{trail:?}");
    assert!(trail.contains("resource=\\u{1b}]0;owned\\u{7}"), "{trail}");
    assert!(trail.contains("reason=\\u{9b}31mred"), "{trail}");
}

fn manta_now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

#[test]
fn audit_prune_deletes_by_age_and_count_and_audit_alone_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = SqliteStore::open(&d.join("manager.db")).unwrap();
    let day = 86_400_000;
    let now = manta_now_ms();
    let events: Vec<AuditEvent> = (0..10)
        .map(|i| event(now - (100 - i) * day - day / 2, "/old"))
        .chain((0..10).map(|i| event(now - 10_000 + i, "/new")))
        .collect();
    store.append_audit(&events).unwrap();
    // Reading the trail never prunes it, even past the default 90-day retention.
    assert_eq!(admin(d, &["audit", "--limit", "100"]).lines().count(), 20);
    assert_eq!(
        admin(d, &["audit", "prune", "--older-than", "95d"]),
        "deleted 6 audit rows\n"
    );
    assert_eq!(
        admin(d, &["audit", "prune", "--max-rows", "12"]),
        "deleted 2 audit rows\n"
    );
    // Without flags: the configured (default) retention, 90 days.
    assert_eq!(admin(d, &["audit", "prune"]), "deleted 2 audit rows\n");
    let left = admin(d, &["audit", "--limit", "100"]);
    assert_eq!(left.lines().count(), 10);
    assert!(left.lines().all(|l| l.contains("/new")), "{left}");
}
