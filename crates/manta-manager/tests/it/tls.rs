//! TLS and mTLS through manta-tls: the client certificate identity reaches the audit trail,
//! and a client without a certificate is refused when mTLS is required.

use manta_manager::store::AuditQuery;
use manta_proto::core::user_services::GetUserRequest;
use manta_proto::core::user_services::user_management_client::UserManagementClient;
use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls};

use crate::harness::{Manager, ManagerExt as _, Options, authed};

#[tokio::test]
async fn mtls_identity_is_audited_and_clients_without_certificates_are_refused() {
    let pki_dir = tempfile::tempdir().unwrap();
    DevPki::create(pki_dir.path(), &DevPkiOptions::default()).unwrap();
    let tls = ServerTls::from_folder(pki_dir.path(), ClientAuth::Required).unwrap();
    let m = Manager::start_with(Options {
        tls: Some(tls),
        ..Options::default()
    })
    .await;
    m.add_user("alice", "password1", &[]);
    let token = m.token("alice", &[]);
    let uri = format!("https://localhost:{}", m.user_addr.port());

    let client = ClientTls::from_folder(pki_dir.path()).unwrap();
    let channel = manta_tls::connect(&uri, Some(&client)).await.unwrap();
    let me = UserManagementClient::new(channel)
        .get_user(authed(GetUserRequest { user_id: None }, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "alice");
    m.core.audit().flush();
    let events = m
        .core
        .store()
        .query_audit(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .unwrap();
    let identity = events[0].client_identity.as_deref().unwrap_or_default();
    assert!(identity.contains("manta-dev-client"), "{events:#?}");

    // Trusting the CA but presenting no certificate: the handshake is refused.
    let anonymous = ClientTls::from_files(Some(&pki_dir.path().join("ca.crt")), None).unwrap();
    let refused = async {
        let channel = manta_tls::connect(&uri, Some(&anonymous))
            .await
            .map_err(|e| e.to_string())?;
        UserManagementClient::new(channel)
            .get_user(authed(GetUserRequest { user_id: None }, &token))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    assert!(
        refused.await.is_err(),
        "a client without a certificate got through"
    );
    m.stop().await;
}
