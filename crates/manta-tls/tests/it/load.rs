//! Loading client and server folders: every bad input gives a typed error naming the file
//! and the fix.

use std::path::Path;

use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls, TlsError};

use crate::support::{Ca, LeafSpec, client_folder, server_folder, write};

/// Loads `dir` as a client folder and checks the error's variant and message.
fn check_client(dir: &Path, expected: fn(&TlsError) -> bool, message_parts: &[&str]) {
    let err = ClientTls::from_folder(dir).unwrap_err();
    let msg = err.to_string();
    assert!(expected(&err), "unexpected error: {msg}");
    for part in message_parts {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

fn good_client_dir(root: &Path) -> std::path::PathBuf {
    let ca = Ca::new("test CA");
    let dir = root.join("client");
    client_folder(&dir, &ca.issue(&LeafSpec::client("alice")), &ca);
    dir
}

#[test]
fn good_client_folder_loads() {
    let root = tempfile::tempdir().unwrap();
    let tls = ClientTls::from_folder(good_client_dir(root.path())).unwrap();
    assert!(tls.identity().unwrap().subject().contains("CN=alice"));
    assert_eq!(tls.client_config().alpn_protocols, vec![b"h2".to_vec()]);
}

#[test]
fn incomplete_folder_is_an_error_never_plaintext() {
    let root = tempfile::tempdir().unwrap();
    check_client(
        &root.path().join("nope"),
        |e| matches!(e, TlsError::MissingFolder { .. }),
        &["nope", "does not exist"],
    );
    // Without ca.crt nothing else counts.
    let dir = good_client_dir(&root.path().join("no-ca"));
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    check_client(
        &dir,
        |e| matches!(e, TlsError::MissingFile { .. }),
        &["ca.crt", "is missing", "put the PEM file there"],
    );
    // Half a client pair names the missing half and both ways out.
    for (missing, present) in [("client.crt", "client.key"), ("client.key", "client.crt")] {
        let dir = good_client_dir(&root.path().join(missing));
        std::fs::remove_file(dir.join(missing)).unwrap();
        let expected = format!(
            "{} is missing: add it beside {present} for mTLS, or remove {present} to connect without a client certificate",
            dir.join(missing).display()
        );
        check_client(
            &dir,
            |e| matches!(e, TlsError::IncompletePair { .. }),
            &[&expected],
        );
    }
}

#[test]
fn ca_only_folder_is_server_authenticated_tls() {
    let root = tempfile::tempdir().unwrap();
    let dir = good_client_dir(root.path());
    std::fs::remove_file(dir.join("client.crt")).unwrap();
    std::fs::remove_file(dir.join("client.key")).unwrap();
    let tls = ClientTls::from_folder(&dir).unwrap();
    assert!(tls.identity().is_none());
    // The CA is still checked: a leaf certificate as ca.crt is refused.
    let ca = Ca::new("test CA");
    let leaf = ca.issue(&LeafSpec::client("alice"));
    client_folder(&dir, &leaf, &ca);
    std::fs::copy(dir.join("client.crt"), dir.join("ca.crt")).unwrap();
    std::fs::remove_file(dir.join("client.crt")).unwrap();
    std::fs::remove_file(dir.join("client.key")).unwrap();
    check_client(&dir, |e| matches!(e, TlsError::NotCa { .. }), &["ca.crt"]);
}

#[test]
fn empty_folder_says_what_to_put_there() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    check_client(
        &empty,
        |e| matches!(e, TlsError::NoCertificates { .. }),
        &[&format!(
            "certificate folder {} holds none of ca.crt, client.crt, client.key: put the manager's CA certificate there as ca.crt (and client.crt with client.key for mTLS)",
            empty.display()
        )],
    );
}

#[test]
fn empty_and_non_pem_files_are_rejected() {
    let root = tempfile::tempdir().unwrap();
    let dir = good_client_dir(root.path());
    write(&dir, "ca.crt", "", 0o644);
    check_client(
        &dir,
        |e| matches!(e, TlsError::NotPem { .. }),
        &["ca.crt", "empty"],
    );
    write(&dir, "ca.crt", "this is not a certificate", 0o644);
    check_client(
        &dir,
        |e| matches!(e, TlsError::NotPem { .. }),
        &["ca.crt", "BEGIN CERTIFICATE"],
    );

    let dir = good_client_dir(&root.path().join("k"));
    write(&dir, "client.key", "garbage", 0o600);
    check_client(
        &dir,
        |e| matches!(e, TlsError::NotPem { .. }),
        &["client.key", "private key"],
    );
}

#[test]
fn key_of_unsupported_type_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let dir = good_client_dir(root.path());
    // A PKCS#8 block whose algorithm no provider knows.
    write(
        &dir,
        "client.key",
        "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
        0o600,
    );
    check_client(
        &dir,
        |e| matches!(e, TlsError::UnsupportedKey { .. }),
        &["client.key", "unsupported type"],
    );
}

#[test]
fn key_cert_mismatch_is_caught_at_load() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let dir = root.path().join("server");
    let one = ca.issue(&LeafSpec::server());
    let two = ca.issue(&LeafSpec::server());
    server_folder(&dir, &one, &ca);
    write(&dir, "server.key", &two.key, 0o600);
    let err = ServerTls::from_folder(&dir, ClientAuth::Required).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("server.key") && msg.contains("server.crt"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
}

#[test]
fn expired_and_future_certificates_show_their_dates() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let expired = LeafSpec {
        valid_from_days: -30,
        valid_to_days: -2,
        ..LeafSpec::client("old")
    };
    let dir = root.path().join("expired");
    client_folder(&dir, &ca.issue(&expired), &ca);
    check_client(
        &dir,
        |e| matches!(e, TlsError::Expired { .. }),
        &["client.crt", "expired on", "renew"],
    );

    let future = LeafSpec {
        valid_from_days: 2,
        valid_to_days: 30,
        ..LeafSpec::client("new")
    };
    let dir = root.path().join("future");
    client_folder(&dir, &ca.issue(&future), &ca);
    check_client(
        &dir,
        |e| matches!(e, TlsError::NotYetValid { .. }),
        &["client.crt", "not valid before"],
    );
}

#[test]
fn ca_file_holding_a_leaf_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let leaf = ca.issue(&LeafSpec::client("alice"));
    let dir = root.path().join("c");
    client_folder(&dir, &leaf, &ca);
    write(&dir, "ca.crt", &leaf.cert, 0o644);
    check_client(
        &dir,
        |e| matches!(e, TlsError::NotCa { .. }),
        &["ca.crt", "not a CA"],
    );
}

#[test]
fn certificate_without_the_needed_usage_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    // A server certificate used as a client certificate.
    let dir = root.path().join("c");
    client_folder(&dir, &ca.issue(&LeafSpec::server()), &ca);
    check_client(
        &dir,
        |e| matches!(e, TlsError::MissingUsage { .. }),
        &["client.crt", "clientAuth"],
    );

    let dir = root.path().join("s");
    server_folder(&dir, &ca.issue(&LeafSpec::client("x")), &ca);
    let err = ServerTls::from_folder(&dir, ClientAuth::Required).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::MissingUsage {
                usage: "serverAuth",
                ..
            }
        ),
        "{err}"
    );

    // No EKU extension at all is accepted, as webpki does.
    let dir = root.path().join("n");
    let spec = LeafSpec {
        eku: vec![],
        ..LeafSpec::client("plain")
    };
    client_folder(&dir, &ca.issue(&spec), &ca);
    ClientTls::from_folder(&dir).unwrap();
}

#[test]
fn chain_in_wrong_order_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let leaf = ca.issue(&LeafSpec::client("alice"));
    let other = Ca::new("other CA");
    let dir = root.path().join("c");
    client_folder(&dir, &leaf, &ca);
    // The leaf followed by a certificate that did not issue it.
    write(
        &dir,
        "client.crt",
        &format!("{}{}", leaf.cert, other.pem),
        0o644,
    );
    check_client(
        &dir,
        |e| matches!(e, TlsError::BrokenChain { .. }),
        &["client.crt", "leaf first"],
    );
    // The right issuer after the leaf is fine.
    write(
        &dir,
        "client.crt",
        &format!("{}{}", leaf.cert, ca.pem),
        0o644,
    );
    ClientTls::from_folder(&dir).unwrap();
}

#[test]
fn private_key_readable_by_others_is_refused_with_chmod_hint() {
    let root = tempfile::tempdir().unwrap();
    let dir = good_client_dir(root.path());
    for mode in [0o644, 0o640, 0o604] {
        let key = std::fs::read_to_string(dir.join("client.key")).unwrap();
        write(&dir, "client.key", &key, mode);
        let path = dir.join("client.key");
        check_client(
            &dir,
            |e| matches!(e, TlsError::InsecureKeyPermissions { .. }),
            &[&format!("chmod 600 {}", path.display())],
        );
    }
}

#[test]
fn server_folder_needs_ca_only_when_clients_are_verified() {
    let root = tempfile::tempdir().unwrap();
    let pki = DevPki::create(root.path().join("pki"), &DevPkiOptions::default()).unwrap();
    std::fs::remove_file(pki.ca_cert()).unwrap();
    let err = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap_err();
    assert!(matches!(err, TlsError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
    let tls = ServerTls::from_folder(pki.dir(), ClientAuth::None).unwrap();
    assert_eq!(tls.client_auth(), ClientAuth::None);
}

#[test]
fn debug_output_never_contains_key_material() {
    let root = tempfile::tempdir().unwrap();
    let pki = DevPki::create(root.path(), &DevPkiOptions::default()).unwrap();
    let key = std::fs::read_to_string(pki.client_key()).unwrap();
    let body: String = key.lines().nth(1).unwrap().to_owned();
    let client = ClientTls::from_folder(pki.dir()).unwrap();
    let server = ServerTls::from_folder(pki.dir(), ClientAuth::Required).unwrap();
    for text in [format!("{client:?}"), format!("{server:?}")] {
        assert!(!text.contains(&body), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
    assert!(format!("{server:?}").contains("[REDACTED]"));
}

#[test]
fn failed_reload_keeps_the_last_good_certificate() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let dir = root.path().join("s");
    server_folder(&dir, &ca.issue(&LeafSpec::server()), &ca);
    let tls = ServerTls::from_folder(&dir, ClientAuth::Required).unwrap();
    let before = tls.identity();

    // Half a rotation: a new certificate whose key has not landed yet.
    let next = ca.issue(&LeafSpec::server());
    write(&dir, "server.crt", &next.cert, 0o644);
    let err = tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert_eq!(tls.identity(), before);

    write(&dir, "server.key", &next.key, 0o600);
    tls.reload().unwrap();
    assert_ne!(tls.identity(), before);
}

#[test]
fn client_reload_swaps_identity_and_keeps_it_on_error() {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let dir = root.path().join("c");
    client_folder(&dir, &ca.issue(&LeafSpec::client("first")), &ca);
    let tls = ClientTls::from_folder(&dir).unwrap();
    let clone = tls.clone();

    write(&dir, "ca.crt", "not pem", 0o644);
    write(
        &dir,
        "client.crt",
        &ca.issue(&LeafSpec::client("second")).cert,
        0o644,
    );
    assert!(tls.reload().is_err());
    assert!(clone.identity().unwrap().subject().contains("CN=first"));

    let second = ca.issue(&LeafSpec::client("second"));
    client_folder(&dir, &second, &ca);
    tls.reload().unwrap();
    // Clones share the material, so every connector built from them sees the swap.
    assert!(clone.identity().unwrap().subject().contains("CN=second"));
}
