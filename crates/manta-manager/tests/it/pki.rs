//! `manta-manager pki init`: the real binary writes a development PKI that a real TLS manager
//! and a client with the client certificate (under the published SDK's names) accept.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use manta_proto::core::user_services::GetUserRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_tls::ClientTls;

use crate::harness::authed;
use crate::process::{BIN, Served, admin};

fn pki_init(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["pki", "init"])
        .arg(dir)
        .args(extra)
        .env_remove("MANTA_MANAGER_CONFIG")
        .env_remove("MANTA_MANAGER_DATA_DIR")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_init_writes_the_sdk_names_and_a_tls_manager_accepts_its_client() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let out = pki_init(&pki, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    for (name, mode) in [
        ("ca.crt", 0o644),
        ("client.crt", 0o644),
        ("client.key", 0o600),
        ("server.crt", 0o644),
        ("server.key", 0o600),
        ("ca.key", 0o600),
        ("manta-ca-dev.crt", 0o644),
        ("manta-sdk-dev.crt", 0o644),
        ("manta-sdk-dev.key", 0o600),
    ] {
        let path = pki.join(name);
        let meta = std::fs::metadata(&path).unwrap_or_else(|_| panic!("no {name}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        assert!(
            printed.contains(&format!("wrote {}", path.display())),
            "{printed}"
        );
    }
    assert!(
        printed.contains("MANTA_CERT_DIR=") && printed.contains("MANTA_ENV=dev"),
        "{printed}"
    );
    assert!(
        !printed.contains("PRIVATE KEY"),
        "keys are never printed: {printed}"
    );

    // A second run refuses and leaves every file as it was; --force replaces them.
    let ca = std::fs::read(pki.join("ca.crt")).unwrap();
    let again = pki_init(&pki, &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("exists already") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(pki.join("ca.crt")).unwrap(), ca);
    let forced = pki_init(&pki, &["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_ne!(std::fs::read(pki.join("ca.crt")).unwrap(), ca);
    assert_eq!(
        std::fs::metadata(pki.join("server.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let left: Vec<_> = std::fs::read_dir(&pki)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "staging files left: {left:?}");

    // A real TLS manager on those files, requiring client certificates.
    let data = tmp.path().join("data");
    let config = tmp.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_folder = {:?}\nclient_auth = \"required\"\n",
            pki.to_str().unwrap()
        ),
    )
    .unwrap();
    let served = Served::start(&data, Some(&config), &[]);
    admin(
        &data,
        Some(&config),
        &["user", "add", "root", "--scopes", "admin:*"],
        "",
    );
    let token = admin(
        &data,
        Some(&config),
        &["token", "issue", "--user", "root", "--ttl", "1h"],
        "",
    );
    let uri = format!("https://localhost:{}", served.user_addr.port());
    // The files the published SDK reads through MANTA_CERT_DIR with MANTA_ENV=dev.
    let sdk = ClientTls::from_files(
        Some(&pki.join("manta-ca-dev.crt")),
        Some((
            &pki.join("manta-sdk-dev.crt"),
            &pki.join("manta-sdk-dev.key"),
        )),
    )
    .unwrap();
    let channel = manta_tls::connect(&uri, Some(&sdk)).await.unwrap();
    let mut client = UserManagementClient::new(channel);
    let me = client
        .get_user(authed(GetUserRequest { user_id: None }, token.trim()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "root");
    drop(client);
    served.terminate();
}
