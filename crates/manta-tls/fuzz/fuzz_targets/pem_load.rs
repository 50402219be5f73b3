//! Fuzzes PEM loading: arbitrary bytes as a certificate file and as a private key file must
//! give a certificate list or a typed error, never a panic, and a key error never quotes
//! the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretBox;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz.pem");
    if let Ok(certs) = manta_tls::parse_certificates(data, origin) {
        assert!(!certs.is_empty());
        for cert in &certs {
            // parse_certificates only returns certificates that decode as X.509.
            let _ = manta_tls::PeerIdentity::from_der(cert);
        }
    }
    let key = SecretBox::new(data.to_vec().into_boxed_slice());
    if let Err(err) = manta_tls::parse_private_key(&key, origin) {
        let msg = err.to_string();
        assert!(msg.contains("fuzz.pem"));
    }
});
