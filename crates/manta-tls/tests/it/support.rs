//! Test PKI built with rcgen, folder writers, and a tonic-health server on 127.0.0.1:0
//! that records the `PeerInfo` of each request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use manta_tls::{PeerInfo, ServerTls, TlsIncoming};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) pem: String,
}

pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
}

#[derive(Clone)]
pub(crate) struct LeafSpec {
    pub(crate) cn: String,
    pub(crate) names: Vec<String>,
    pub(crate) eku: Vec<ExtendedKeyUsagePurpose>,
    /// Days relative to now.
    pub(crate) valid_from_days: i64,
    pub(crate) valid_to_days: i64,
}

impl LeafSpec {
    pub(crate) fn server() -> Self {
        Self {
            cn: "test-server".into(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            valid_from_days: -1,
            valid_to_days: 30,
        }
    }

    pub(crate) fn client(cn: &str) -> Self {
        Self {
            cn: cn.into(),
            names: vec![],
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            valid_from_days: -1,
            valid_to_days: 30,
        }
    }
}

/// A point in time `days` from now (negative: in the past).
fn at(days: i64) -> x509_parser::time::ASN1Time {
    let now = x509_parser::time::ASN1Time::now().timestamp();
    x509_parser::time::ASN1Time::from_timestamp(now + days * 86_400).expect("in range")
}

impl Ca {
    pub(crate) fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = at(-1).to_datetime();
        params.not_after = at(365).to_datetime();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    pub(crate) fn issue(&self, spec: &LeafSpec) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(spec.names.clone()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.cn.clone());
        params.extended_key_usages = spec.eku.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = at(spec.valid_from_days).to_datetime();
        params.not_after = at(spec.valid_to_days).to_datetime();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap().pem();
        Leaf {
            cert,
            key: key.serialize_pem(),
        }
    }
}

/// Writes `content` to `dir/name` with `mode`.
pub(crate) fn write(dir: &Path, name: &str, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a server folder: `server.crt`/`server.key` from `leaf`, `ca.crt` = `client_ca`.
pub(crate) fn server_folder(dir: &Path, leaf: &Leaf, client_ca: &Ca) {
    std::fs::create_dir_all(dir).unwrap();
    write(dir, "server.crt", &leaf.cert, 0o644);
    write(dir, "server.key", &leaf.key, 0o600);
    write(dir, "ca.crt", &client_ca.pem, 0o644);
}

/// Writes a client folder: `client.crt`/`client.key` from `leaf`, `ca.crt` = `server_ca`.
pub(crate) fn client_folder(dir: &Path, leaf: &Leaf, server_ca: &Ca) {
    std::fs::create_dir_all(dir).unwrap();
    write(dir, "client.crt", &leaf.cert, 0o644);
    write(dir, "client.key", &leaf.key, 0o600);
    write(dir, "ca.crt", &server_ca.pem, 0o644);
}

/// A running tonic-health server and what it saw.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Option<PeerInfo>>>>,
    /// The `:scheme` of each request, as the HTTP/2 server saw it.
    pub(crate) schemes: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves tonic-health on 127.0.0.1:0 through `TlsIncoming`.
pub(crate) async fn serve(tls: Option<&ServerTls>) -> TestServer {
    let incoming = TlsIncoming::bind("127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    let addr = incoming.local_addr();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let seen: Arc<Mutex<Vec<Option<PeerInfo>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let svc = InterceptedService::new(health, move |req: tonic::Request<()>| {
        record
            .lock()
            .unwrap()
            .push(PeerInfo::from_request(&req).cloned());
        Ok(req)
    });
    let schemes: Arc<Mutex<Vec<String>>> = Arc::default();
    let record_scheme = Arc::clone(&schemes);
    let scheme_layer =
        tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
            let scheme = req.uri().scheme_str().unwrap_or("").to_owned();
            record_scheme.lock().unwrap().push(scheme);
            req
        });
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(scheme_layer)
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    TestServer {
        addr,
        seen,
        schemes,
        task,
    }
}

/// One health check over `channel`.
pub(crate) async fn check(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}
