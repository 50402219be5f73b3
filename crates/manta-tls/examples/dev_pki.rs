//! Creates a development PKI in a temporary folder, then loads it as a client folder (mTLS,
//! with the client pair) and as a server folder that requires client certificates.
//!
//! ```text
//! cargo run -p manta-tls --example dev_pki
//! ```

use manta_tls::{ClientAuth, ClientTls, DevPki, DevPkiOptions, ServerTls};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let pki = DevPki::create(
        dir.path(),
        &DevPkiOptions::default().extra_name("manager.internal"),
    )?;
    println!("CA certificate: {}", pki.ca_cert().display());

    // One folder holds both sides here; a real client folder has ca.crt, client.crt and
    // client.key only.
    let client = ClientTls::from_folder(pki.dir())?;
    let server = ServerTls::from_folder(pki.dir(), ClientAuth::Required)?;
    let alpn = |protocols: &[Vec<u8>]| {
        protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
    };
    println!(
        "client offers {:?}, server accepts {:?}",
        alpn(&client.client_config().alpn_protocols),
        alpn(&server.server_config().alpn_protocols)
    );
    Ok(())
}
