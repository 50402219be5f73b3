//! Full TLS handshakes per second on one core against our acceptor: mTLS (client
//! certificate required and verified) versus plain TLS without client auth.
//!
//! Run: `cargo bench -p manta-tls --bench handshake`. Client and server share one
//! current-thread runtime, so the figure is the cost of both sides on one core. Session
//! resumption is off so every iteration is a full handshake.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls, TlsIncoming};
use tokio_stream::StreamExt;

fn handshakes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::create(dir.path(), &DevPkiOptions::default()).expect("dev pki");

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    for (name, auth, client) in [
        (
            "mtls",
            ClientAuth::Required,
            ClientTls::from_folder(pki.dir()).expect("client folder"),
        ),
        (
            "tls_no_client_auth",
            ClientAuth::None,
            ClientTls::from_files(Some(&pki.ca_cert()), None).expect("client ca"),
        ),
    ] {
        let server = ServerTls::from_folder(pki.dir(), auth).expect("server folder");
        let mut incoming = rt
            .block_on(TlsIncoming::bind(
                "127.0.0.1:0".parse().expect("addr"),
                Some(&server),
            ))
            .expect("bind");
        let port = incoming.local_addr().port();
        let mut config = (*client.client_config()).clone();
        config.resumption = rustls::client::Resumption::disabled();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let server_name = rustls::pki_types::ServerName::try_from("localhost").expect("name");

        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("connect");
                    let client_side = connector
                        .connect(server_name.clone(), tcp)
                        .await
                        .expect("client handshake");
                    // The acceptor yields a stream only after the server side (including
                    // client certificate verification) has finished.
                    let server_side = incoming.next().await.expect("accepted").expect("ok");
                    assert_eq!(
                        server_side.peer_info().identity().is_some(),
                        auth == ClientAuth::Required
                    );
                    drop((client_side, server_side));
                });
            });
        });
    }
    group.finish();
}

#[allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]
mod group {
    use super::{criterion_group, handshakes};
    criterion_group!(benches, handshakes);
}

criterion_main!(group::benches);
