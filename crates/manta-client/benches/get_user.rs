//! GetUser calls per second from one `UserApi` (one HTTP/2 connection) against a running
//! manager: sequential (the published SDK's loop) and with 16 calls in flight.
//!
//! Run: `MANTA_BENCH_ADDR=127.0.0.1:50052 MANTA_BENCH_TOKEN=$(...) cargo bench -p manta-client --bench get_user`
//! Optional: `MANTA_BENCH_CALLS` (default 5000, at most 100000). Each phase also stops after
//! 30 s, so the run is bounded whatever the manager's speed.

use std::time::{Duration, Instant};

use manta_client::UserApi;
use secrecy::SecretString;

const PHASE_LIMIT: Duration = Duration::from_secs(30);

fn main() {
    let (Ok(addr), Ok(token)) = (
        std::env::var("MANTA_BENCH_ADDR"),
        std::env::var("MANTA_BENCH_TOKEN"),
    ) else {
        println!(
            "get_user bench skipped: set MANTA_BENCH_ADDR (host:port of a running manager) and \
             MANTA_BENCH_TOKEN (a token it accepts), e.g. from `cargo run -p manta-manager -- dev`"
        );
        return;
    };
    let calls: u32 = std::env::var("MANTA_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
        .clamp(1, 100_000);
    let Some((host, port)) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
    else {
        println!("MANTA_BENCH_ADDR must be host:port, got {addr:?}");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let api = UserApi::new(SecretString::from(token), host, port).expect("a UserApi");
        let addr = addr.clone();
        // Warm up: connect, and let both sides settle.
        for _ in 0..200 {
            api.get_user().await.expect("GetUser during warm-up");
        }

        let start = Instant::now();
        let mut done = 0u32;
        while done < calls && start.elapsed() < PHASE_LIMIT {
            api.get_user().await.expect("GetUser");
            done += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "get_user sequential: {done} calls in {secs:.3} s = {:.0} calls/s ({:.1} us each)",
            f64::from(done) / secs,
            secs * 1e6 / f64::from(done)
        );

        raw_sequential(&addr, &api, calls).await;
        for in_flight in [16u32, 64] {
            concurrent(&api, calls, in_flight).await;
        }
    });
}

/// `calls` GetUser calls spread over `in_flight` tasks sharing the one connection.
async fn concurrent(api: &UserApi, calls: u32, in_flight: u32) {
    let start = Instant::now();
    let per_task = calls.div_ceil(in_flight);
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                while n < per_task && start.elapsed() < PHASE_LIMIT {
                    api.get_user().await.expect("GetUser");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0u32;
    for t in tasks {
        total += t.await.expect("a bench task");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "get_user {in_flight} in flight on one connection: {total} calls in {secs:.3} s = {:.0} calls/s",
        f64::from(total) / secs
    );
}

/// The same sequential loop with the bare generated tonic client (no token engine, retries,
/// timeouts or audit), to show what `UserApi` itself costs per call.
async fn raw_sequential(addr: &str, api: &UserApi, calls: u32) {
    use manta_proto::core::user_services::GetUserRequest;
    use manta_proto::core::user_services::user_management_client::UserManagementClient;
    use secrecy::ExposeSecret as _;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("a connection");
    let mut client = UserManagementClient::new(channel);
    let token: tonic::metadata::AsciiMetadataValue =
        api.token().expose_secret().parse().expect("an ASCII token");
    let call = |client: &mut UserManagementClient<tonic::transport::Channel>| {
        let mut req = tonic::Request::new(GetUserRequest { user_id: None });
        req.metadata_mut().insert("authorization", token.clone());
        let mut client = client.clone();
        async move { client.get_user(req).await.expect("GetUser") }
    };
    for _ in 0..200 {
        call(&mut client).await;
    }
    let start = Instant::now();
    let mut done = 0u32;
    while done < calls && start.elapsed() < PHASE_LIMIT {
        call(&mut client).await;
        done += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare tonic client sequential (reference): {done} calls in {secs:.3} s = {:.0} calls/s ({:.1} us each)",
        f64::from(done) / secs,
        secs * 1e6 / f64::from(done)
    );
}
