//! Issue 14, connections and message sizes: per-method message limits enforced before the
//! body is buffered, handshake and idle timeouts on the plaintext and TLS listeners, and
//! the global and per-peer connection caps. Every test talks to a real manager over real
//! sockets on 127.0.0.1 with small configured timeouts, so none takes more than a second or
//! two.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use manta_manager::limits::Limits;
use manta_manager::server::ServeOptions;
use manta_proto::common::tasks::Module;
use manta_proto::core::user_services::SignInRequest;
use manta_proto::core::user_services::module_management_client::ModuleManagementClient;
use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{Manager, ManagerExt as _, Options, authed};

/// How long a test waits for the server to close a connection before calling it a failure:
/// far above the configured timeouts, far below the 10 s defaults the test overrides.
pub(crate) const CLOSE_BOUND: Duration = Duration::from_secs(4);

/// Limits with short timeouts for these tests.
pub(crate) fn quick(limits: Limits) -> ServeOptions {
    ServeOptions {
        limits,
        ..ServeOptions::default()
    }
}

pub(crate) fn short_timeouts() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    }
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8 reaches
/// the server; each is a different peer for the per-peer cap).
pub(crate) async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server closes `stream` (end of stream or reset) within [`CLOSE_BOUND`],
/// discarding anything it sends first (its HTTP/2 settings).
pub(crate) async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(CLOSE_BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    outcome.is_ok()
}

/// The gRPC status of one call to `path` whose single request message declares
/// `declared` bytes, sent as a client that never holds the message would: the 5-byte
/// header, then the same 64 KiB chunk over and over until the server answers. Returns the
/// grpc-status code and message, and how many body bytes the server let in before.
pub(crate) async fn oversized_call(
    addr: SocketAddr,
    path: &str,
    declared: u32,
) -> (i32, String, u64) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let mut header = vec![0u8];
    header.extend_from_slice(&declared.to_be_bytes());
    let chunk = Bytes::from(vec![b'p'; 64 * 1024]);
    let sent = std::sync::atomic::AtomicU64::new(0);
    let sending = async {
        body.send_data(Bytes::from(header), false).ok()?;
        while sent.load(Relaxed) < u64::from(declared) {
            body.reserve_capacity(chunk.len());
            let granted = std::future::poll_fn(|cx| body.poll_capacity(cx))
                .await?
                .ok()?;
            body.send_data(chunk.slice(..granted), false).ok()?;
            sent.fetch_add(granted as u64, Relaxed);
        }
        Some(())
    };
    let answer = async {
        let response = response.await.unwrap();
        let (parts, mut recv) = response.into_parts();
        let mut status = grpc_status(&parts.headers);
        while recv.data().await.is_some() {}
        if status.is_none()
            && let Ok(Some(trailers)) = recv.trailers().await
        {
            status = grpc_status(&trailers);
        }
        status.unwrap_or((-1, "no grpc-status".into()))
    };
    tokio::pin!(sending);
    tokio::pin!(answer);
    let status = tokio::select! {
        status = &mut answer => status,
        _ = &mut sending => answer.await,
    };
    (status.0, status.1, sent.load(Relaxed))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(i32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    let message = percent_decode(message);
    Some((code, message))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn unauthenticated_messages_over_the_small_limit_are_refused_before_they_are_read() {
    let m = Manager::start().await;
    m.add_user("alice", "password1", &[]);
    for path in [
        "/core.user_services.UserManagement/SignIn",
        "/manta.v1.TokenService/CreateSession",
        "/manta.v1.TokenService/RefreshSession",
        "/core.user_services.UserManagement/RegisterUser",
    ] {
        let (code, message, sent) = oversized_call(m.user_addr, path, 32 << 20).await;
        assert_eq!(
            code,
            tonic::Code::ResourceExhausted as i32,
            "{path}: {message}"
        );
        assert!(
            message.contains("limits.identity_message_bytes"),
            "{path}: {message}"
        );
        // Refused at the header: the server never asked for the 32 MiB.
        assert!(sent < 8 << 20, "{path}: the server took {sent} bytes first");
    }
    // An ordinary sign-in is untouched.
    let signed_in = m
        .users()
        .await
        .sign_in(SignInRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await;
    assert!(signed_in.is_ok(), "{signed_in:?}");
    m.stop().await;
}

#[tokio::test]
async fn module_code_takes_the_large_limit_and_other_methods_the_default_one() {
    let m = Manager::start_with(Options {
        serve: quick(Limits {
            message_bytes: 1 << 20,
            ..Limits::default()
        }),
        ..Options::default()
    })
    .await;
    m.add_user("sam", "password1", &["module:upload", "cluster:write"]);
    let token = m.token("sam", &["module:upload", "cluster:write"]);
    let mut modules = ModuleManagementClient::new(m.channel().await);
    let big = Module {
        python_program: vec![7; 6 << 20],
        name: "big".into(),
        ..Module::default()
    };
    let sent = modules.send_module(authed(big, &token)).await;
    assert!(sent.is_ok(), "a 6 MiB module is refused: {sent:?}");

    // 2 MiB is over the 1 MiB default limit of CreateCluster.
    let (code, message, _) = oversized_call(
        m.user_addr,
        "/core.user_services.ClusterManagement/CreateCluster",
        2 << 20,
    )
    .await;
    // Without a token the call is refused before its body is read; with one, the size is.
    assert_eq!(code, tonic::Code::Unauthenticated as i32, "{message}");
    let mut clusters =
        manta_proto::core::user_services::cluster_management_client::ClusterManagementClient::new(
            m.channel().await,
        );
    let err = clusters
        .create_cluster(authed(
            manta_proto::core::user_services::CreateClusterRequest {
                name: Some("x".repeat(2 << 20)),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("limits.message_bytes"), "{err:?}");
    m.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_handshake_timeout_on_both_plaintext_listeners() {
    let m = Manager::start_with(Options {
        serve: quick(short_timeouts()),
        ..Options::default()
    })
    .await;
    for addr in [m.user_addr, m.node_addr] {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_by_server(&mut silent).await,
            "{addr}: a client that sent nothing is still connected"
        );
    }
    // A client that sends only part of the preface is no better off.
    let mut slow = TcpStream::connect(m.user_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"PRI * HTTP/2.0")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut slow).await,
        "a partial preface kept the connection"
    );
    m.stop().await;
}

fn tls_manager_options(pki: &std::path::Path) -> Options {
    DevPki::create(pki, &DevPkiOptions::default()).unwrap();
    Options {
        tls: Some(ServerTls::from_folder(pki, ClientAuth::None).unwrap()),
        serve: quick(short_timeouts()),
        ..Options::default()
    }
}

#[tokio::test]
async fn tls_clients_that_stall_in_or_after_the_handshake_are_closed() {
    let pki = tempfile::tempdir().unwrap();
    let m = Manager::start_with(tls_manager_options(pki.path())).await;

    // No ClientHello at all.
    let mut silent = TcpStream::connect(m.user_addr).await.unwrap();
    assert!(
        closed_by_server(&mut silent).await,
        "a silent TLS client is still connected"
    );

    // A complete TLS handshake, then nothing: no HTTP/2 preface.
    let client = ClientTls::from_files(Some(&pki.path().join("ca.crt")), None).unwrap();
    let config = client.client_config();
    let addr = m.user_addr;
    let closed = tokio::task::spawn_blocking(move || {
        let name = manta_tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = manta_tls::rustls::ClientConnection::new(config, name).unwrap();
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(CLOSE_BOUND)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        let mut tls = manta_tls::rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a client silent after the TLS handshake is still connected"
    );
    m.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_one_with_an_open_call_is_kept() {
    let m = Manager::start_with(Options {
        serve: quick(short_timeouts()),
        ..Options::default()
    })
    .await;
    // An HTTP/2 client that opens the connection properly and then makes no call.
    let tcp = TcpStream::connect(m.user_addr).await.unwrap();
    let (_idle, connection) = h2::client::handshake(tcp).await.unwrap();
    let ended = tokio::time::timeout(CLOSE_BOUND, connection).await;
    assert!(ended.is_ok(), "an idle connection was not closed");

    // A call whose request never ends keeps its connection past the idle timeout.
    let tcp = TcpStream::connect(m.user_addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let mut connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://{}/core.user_services.UserManagement/SignIn",
        m.user_addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, open_call) = client.send_request(request, false).unwrap();
    // The one wait on the wall clock: three idle timeouts must pass without a close.
    let held = tokio::time::timeout(Duration::from_millis(900), &mut connection).await;
    assert!(held.is_err(), "the connection closed with a call open");
    drop((open_call, response));
    let ended = tokio::time::timeout(CLOSE_BOUND, &mut connection).await;
    assert!(
        ended.is_ok(),
        "the connection stayed open after its call ended"
    );
    m.stop().await;
}

#[tokio::test]
async fn connections_over_the_caps_are_closed_at_once_and_other_peers_are_served() {
    let m = Manager::start_with(Options {
        serve: quick(Limits {
            max_connections: 8,
            max_connections_per_peer: 3,
            ..Limits::default()
        }),
        ..Options::default()
    })
    .await;
    m.add_user("alice", "password1", &[]);
    let flooder = [127, 0, 0, 2];
    // Kept to the end: its connection counts under the global cap.
    let mut users = m.users().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(flooder, m.user_addr).await);
    }
    let mut fourth = connect_from(flooder, m.user_addr).await;
    assert!(
        closed_by_server(&mut fourth).await,
        "the peer's fourth connection was kept"
    );
    // Another address is served meanwhile.
    let signed_in = users
        .sign_in(SignInRequest {
            username: "alice".into(),
            password: "password1".into(),
        })
        .await;
    assert!(signed_in.is_ok(), "{signed_in:?}");

    // The global cap counts both listeners: 3 + 1 (the sign-in channel) + 4 more peers.
    for peer in 3..7 {
        held.push(connect_from([127, 0, 0, peer], m.node_addr).await);
    }
    let mut over = connect_from([127, 0, 0, 9], m.node_addr).await;
    assert!(
        closed_by_server(&mut over).await,
        "the ninth connection was kept"
    );

    // Once the flood is gone, the flooding address is served again.
    drop(held);
    let mut again = None;
    for _ in 0..50 {
        let mut c = connect_from(flooder, m.user_addr).await;
        let mut byte = [0u8; 1];
        // The server speaks first (its HTTP/2 settings) on a connection it keeps.
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), c.read(&mut byte)).await
            && n > 0
        {
            again = Some(c);
            break;
        }
    }
    assert!(
        again.is_some(),
        "the flooding address stayed refused after the flood"
    );
    // A silent connection would hold the graceful shutdown for the handshake timeout.
    drop((users, again));
    m.stop().await;
}
