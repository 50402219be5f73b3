//! Rotating the server certificate while a client streams requests: no request fails,
//! existing connections continue, and the next handshake sees the new certificate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use manta_tls::{ClientAuth, ClientTls, PeerIdentity, ServerTls};

use crate::support::{Ca, LeafSpec, check, client_folder, serve, server_folder};

/// The certificate a fresh TLS handshake with `port` presents.
async fn presented_certificate(client: &ClientTls, port: u16) -> PeerIdentity {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // Resumption off: a resumed session would report the certificate of the session it
    // resumes, not the one a full handshake presents now.
    let mut config = (*client.client_config()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    PeerIdentity::from_der(&certs[0]).unwrap()
}

/// Replaces `dir/name` atomically, as `mv` does.
fn mv_into(dir: &std::path::Path, name: &str, content: &str, mode: u32) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, content).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_loses_no_request() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server_dir = root.path().join("server");
    server_folder(&server_dir, &ca.issue(&LeafSpec::server()), &ca);
    let client_dir = root.path().join("client");
    client_folder(&client_dir, &ca.issue(&LeafSpec::client("streamer")), &ca);

    let server_tls = ServerTls::from_folder(&server_dir, ClientAuth::Required).unwrap();
    let _watch = server_tls.watch(Duration::from_millis(25));
    let server = serve(Some(&server_tls)).await;
    let port = server.addr.port();
    let client = ClientTls::from_folder(&client_dir).unwrap();
    let old = presented_certificate(&client, port).await;

    // One long-lived channel making calls back to back while the certificate rotates.
    let channel = manta_tls::connect(&format!("localhost:{port}"), Some(&client))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let (stop, ok, failed, channel) =
            (stop.clone(), ok.clone(), failed.clone(), channel.clone());
        tokio::spawn(async move {
            // Bounded: at most 20 000 calls even if the stop flag were never set.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match check(channel.clone()).await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Rotate: key first then certificate, each by atomic rename, so the watcher may see
    // a mismatched pair in between and must keep the old one until both have landed.
    let next = ca.issue(&LeafSpec::server());
    mv_into(&server_dir, "server.key", &next.key, 0o600);
    tokio::time::sleep(Duration::from_millis(60)).await;
    mv_into(&server_dir, "server.crt", &next.cert, 0o644);

    let deadline = Instant::now() + Duration::from_secs(10);
    while server_tls.identity() == old {
        assert!(
            Instant::now() < deadline,
            "the watcher never swapped the certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    streamer.await.unwrap();

    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 10,
        "too few requests to prove anything"
    );
    let new = presented_certificate(&client, port).await;
    assert_ne!(new, old);
    assert_eq!(new, server_tls.identity());
    // The long-lived connection still works after the swap.
    check(channel).await.unwrap();
}

#[tokio::test]
async fn kubernetes_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mount = root.path().join("mount");
    let v1 = mount.join("..2026_01_01");
    server_folder(&v1, &ca.issue(&LeafSpec::server()), &ca);
    symlink("..2026_01_01", mount.join("..data")).unwrap();
    for name in ["ca.crt", "server.crt", "server.key"] {
        symlink(format!("..data/{name}"), mount.join(name)).unwrap();
    }
    let server_tls = ServerTls::from_folder(&mount, ClientAuth::Required).unwrap();
    let before = server_tls.identity();
    // The swap follows at once: the watcher's first snapshot is taken before `watch`
    // returns, so nothing needs to wait for it.
    let _watch = server_tls.watch(Duration::from_millis(20));

    let v2 = mount.join("..2026_02_01");
    server_folder(&v2, &ca.issue(&LeafSpec::server()), &ca);
    symlink("..2026_02_01", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while server_tls.identity() == before {
        assert!(Instant::now() < deadline, "the ..data swap was not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
