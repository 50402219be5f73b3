//! The real-handshake matrix: tonic-health served through `TlsIncoming`, called through
//! `manta_tls::connect`, all on 127.0.0.1.

use std::sync::Arc;

use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls, TlsError};

use crate::support::{Ca, LeafSpec, check, client_folder, serve, server_folder};

fn pki(root: &std::path::Path, name: &str) -> DevPki {
    DevPki::create(root.join(name), &DevPkiOptions::default().client_name(name)).unwrap()
}

/// Connects and makes one call; the error text of whichever step failed.
async fn call(uri: &str, tls: Option<&ClientTls>) -> Result<(), String> {
    let channel = manta_tls::connect(uri, tls)
        .await
        .map_err(|e| e.to_string())?;
    check(channel).await.map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn good_mtls_exposes_the_client_identity_to_handlers() {
    let root = tempfile::tempdir().unwrap();
    let pki = pki(root.path(), "alice");
    let server_tls = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap();
    let server = serve(Some(&server_tls)).await;
    let client = ClientTls::from_folder(pki.dir()).unwrap();

    for uri in [
        format!("https://localhost:{}", server.addr.port()),
        format!("127.0.0.1:{}", server.addr.port()),
    ] {
        call(&uri, Some(&client)).await.unwrap();
    }
    // The endpoint dials http:// (see `endpoint`) but must announce https, as the SDK does.
    assert_eq!(*server.schemes.lock().unwrap(), ["https", "https"]);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for info in seen {
        let info = info.expect("PeerInfo in request extensions");
        assert!(info.is_tls());
        assert_eq!(info.remote_addr().unwrap().ip().to_string(), "127.0.0.1");
        let id = info.identity().expect("verified client identity");
        assert!(id.subject().contains("CN=alice"), "{}", id.subject());
        assert_eq!(id.fingerprint(), client.identity().unwrap().fingerprint());
        assert_eq!(id.fingerprint_hex().len(), 64);
    }
}

#[tokio::test]
async fn plaintext_h2c_without_tls() {
    let server = serve(None).await;
    call(&format!("http://127.0.0.1:{}", server.addr.port()), None)
        .await
        .unwrap();
    let info = server.seen.lock().unwrap()[0].clone().unwrap();
    assert_eq!(*server.schemes.lock().unwrap(), ["http"]);
    assert!(!info.is_tls());
    assert!(info.identity().is_none());
}

#[tokio::test]
async fn client_with_the_wrong_ca_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let good = pki(root.path(), "good");
    let other = pki(root.path(), "other");
    let server_tls = ServerTls::from_folder(good.dir(), ClientAuth::Required).unwrap();
    let server = serve(Some(&server_tls)).await;
    let client = ClientTls::from_folder(other.dir()).unwrap();
    let err = manta_tls::connect(&format!("127.0.0.1:{}", server.addr.port()), Some(&client))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Connect { .. }), "{err}");
    let msg = err.to_string();
    // Both development CAs share a name, so webpki reports a bad signature rather than an
    // unknown issuer; either way the peer certificate is refused.
    assert!(msg.contains("invalid peer certificate"), "{msg}");
    assert_eq!(msg.matches("certificate is trusted").count(), 1, "{msg}");
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expired_server_certificate_is_refused_by_the_client() {
    // Our loader refuses an expired certificate, so a bare rustls server plays the
    // misconfigured peer.
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let expired = ca.issue(&LeafSpec {
        valid_from_days: -30,
        valid_to_days: -1,
        ..LeafSpec::server()
    });
    let dir = root.path().join("s");
    server_folder(&dir, &expired, &ca);
    let load_err = ServerTls::from_folder(&dir, ClientAuth::None).unwrap_err();
    assert!(matches!(load_err, TlsError::Expired { .. }), "{load_err}");

    let certs = manta_tls::parse_certificates(expired.cert.as_bytes(), &dir).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(rustls_key_der(&expired.key)).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        }
    });

    let client_dir = root.path().join("c");
    client_folder(&client_dir, &ca.issue(&LeafSpec::client("c")), &ca);
    let client = ClientTls::from_folder(&client_dir).unwrap();
    let err = manta_tls::connect(&format!("127.0.0.1:{port}"), Some(&client))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate expired"), "{err}");
    task.abort();
}

/// The DER of a PEM private key, for the bare rustls server above.
fn rustls_key_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .secret_der()
        .to_vec()
}

#[tokio::test]
async fn hostname_mismatch_is_refused_unless_the_name_is_overridden() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let dir = root.path().join("s");
    let spec = LeafSpec {
        names: vec!["manager.internal".into()],
        ..LeafSpec::server()
    };
    server_folder(&dir, &ca.issue(&spec), &ca);
    let server_tls = ServerTls::from_folder(&dir, ClientAuth::Required).unwrap();
    let server = serve(Some(&server_tls)).await;
    let client_dir = root.path().join("c");
    client_folder(&client_dir, &ca.issue(&LeafSpec::client("c")), &ca);
    let client = ClientTls::from_folder(&client_dir).unwrap();
    let uri = format!("127.0.0.1:{}", server.addr.port());

    let err = manta_tls::connect(&uri, Some(&client)).await.unwrap_err();
    assert!(
        err.to_string().contains("not valid for name \"127.0.0.1\""),
        "{err}"
    );

    let client = client.with_server_name("manager.internal").unwrap();
    call(&uri, Some(&client)).await.unwrap();
    assert!(matches!(
        ClientTls::from_folder(&client_dir)
            .unwrap()
            .with_server_name("bad name!"),
        Err(TlsError::InvalidServerName { .. })
    ));
}

#[tokio::test]
async fn client_without_certificate_fails_when_required_and_passes_when_optional() {
    let root = tempfile::tempdir().unwrap();
    let pki = pki(root.path(), "p");
    let no_cert = ClientTls::from_files(Some(&pki.ca_cert()), None).unwrap();

    let required = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap();
    let server = serve(Some(&required)).await;
    // With TLS 1.3 the client finishes its side first and the refusal arrives with the
    // first read; either way the error says what to add to which folder.
    let address = format!("127.0.0.1:{}", server.addr.port());
    let err = call(&address, Some(&no_cert)).await.unwrap_err();
    let expected = format!(
        "{address} requires a client certificate: add client.crt and client.key (issued by the manager's CA) to {}",
        pki.dir().display()
    );
    assert!(err.contains(&expected), "{err}");
    // The same through the lazy channel a long-running client uses.
    let lazy = manta_tls::connect_lazy(&address, Some(&no_cert)).unwrap();
    let status = check(lazy).await.unwrap_err();
    let source = std::error::Error::source(&status).expect("a transport error");
    let found = TlsError::client_certificate_refusal_in(source).expect("the refusal");
    assert_eq!(found.to_string(), expected);
    // A ca.crt-only folder loads as server-authenticated TLS and is refused the same way.
    let folder = root.path().join("ca-only");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(pki.ca_cert(), folder.join("ca.crt")).unwrap();
    let ca_only = ClientTls::from_folder(&folder).unwrap();
    assert!(ca_only.identity().is_none());
    let err = call(&address, Some(&ca_only)).await.unwrap_err();
    assert!(err.contains("requires a client certificate"), "{err}");
    assert!(err.contains(&folder.display().to_string()), "{err}");
    assert!(server.seen.lock().unwrap().is_empty());

    let optional = ServerTls::from_folder(pki.dir(), ClientAuth::Optional).unwrap();
    let server = serve(Some(&optional)).await;
    call(&format!("127.0.0.1:{}", server.addr.port()), Some(&no_cert))
        .await
        .unwrap();
    call(&format!("127.0.0.1:{}", server.addr.port()), Some(&ca_only))
        .await
        .unwrap();
    server.seen.lock().unwrap().remove(1);
    let with_cert = ClientTls::from_folder(pki.dir()).unwrap();
    call(
        &format!("127.0.0.1:{}", server.addr.port()),
        Some(&with_cert),
    )
    .await
    .unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen[0].as_ref().unwrap().identity().is_none());
    assert!(seen[1].as_ref().unwrap().identity().is_some());
}

#[tokio::test]
async fn plaintext_client_against_tls_server_fails_clearly() {
    let root = tempfile::tempdir().unwrap();
    let pki = pki(root.path(), "p");
    let server_tls = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap();
    let server = serve(Some(&server_tls)).await;
    let result = call(&format!("http://127.0.0.1:{}", server.addr.port()), None).await;
    assert!(result.is_err());
}

#[tokio::test]
async fn danger_switch_accepts_an_untrusted_server_and_lazy_channels_connect_on_use() {
    let root = tempfile::tempdir().unwrap();
    let good = pki(root.path(), "good");
    let other = pki(root.path(), "other");
    let server_tls = ServerTls::from_folder(good.dir(), ClientAuth::None).unwrap();
    let server = serve(Some(&server_tls)).await;
    let uri = format!("127.0.0.1:{}", server.addr.port());

    let strict = ClientTls::from_files(Some(&other.ca_cert()), None).unwrap();
    assert!(call(&uri, Some(&strict)).await.is_err());
    let lax = strict.danger_accept_invalid_certs().unwrap();
    call(&uri, Some(&lax)).await.unwrap();

    let lazy = manta_tls::connect_lazy(&uri, Some(&lax)).unwrap();
    check(lazy).await.unwrap();
    assert_eq!(server.seen.lock().unwrap().len(), 2);
}
