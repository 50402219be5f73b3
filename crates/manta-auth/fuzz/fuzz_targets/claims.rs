//! Fuzzes the claim checks with extreme numbers: correctly signed tokens whose `exp`, `nbf`
//! and `iat` are drawn from the edges of JSON and of the integer types (and raw 64-bit
//! patterns printed as integers or floats), checked at an equally extreme clock by the
//! verifier, the cache, inspection, the refresh engine, the deny list and the issuer. None
//! may panic, and whatever verifies must really be in its time window.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use manta_auth::{
    CachingVerifier, Clock as _, DenyList, Issuer, KeySet, MAX_TIME_CLAIM, ManualClock,
    RefreshConfig, RefreshError, RefreshFuture, Refresher, SigningKey, TokenKind, TokenRequest,
    TokenSource, Verifier, VerifierConfig, inspect,
};
use secrecy::{SecretBox, SecretString};

const SECRET: &[u8] = b"fuzz-claims-secret-of-32-bytes!!";

/// Numbers written as JSON text, at the edges that broke or could break time arithmetic.
const EDGES: [&str; 24] = [
    "0",
    "1",
    "-1",
    "59",
    "1800000000",
    "253402300799",
    "253402300800",
    "4294967295",
    "9007199254740991",
    "9007199254740992",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "10000000000000000000",
    "1e19",
    "1.5e308",
    "-1.5e308",
    "1e400",
    "-9223372036854775808",
    "0.5",
    "-0",
    "1E2",
    "18446744073709551615.0",
];

/// Clock settings, seconds since the epoch.
const CLOCKS: [u64; 8] = [
    0,
    1,
    1_800_000_000,
    MAX_TIME_CLAIM,
    MAX_TIME_CLAIM + 1,
    i64::MAX as u64,
    u64::MAX / 1000,
    u64::MAX,
];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    /// A JSON number for a time claim, or `None` to leave the claim out.
    fn number(&mut self) -> Option<String> {
        let pick = self.byte();
        Some(match pick % 6 {
            0 => return None,
            1 | 2 => EDGES[usize::from(self.byte()) % EDGES.len()].to_owned(),
            3 => self.u64().to_string(),
            4 => (self.u64() as i64).to_string(),
            _ => {
                let f = f64::from_bits(self.u64());
                if f.is_finite() {
                    format!("{f:e}")
                } else {
                    "1e999".to_owned()
                }
            }
        })
    }

    fn clock(&mut self) -> u64 {
        let pick = self.byte();
        if pick < 200 {
            CLOCKS[usize::from(pick) % CLOCKS.len()]
        } else {
            self.u64()
        }
    }
}

struct Never;

impl Refresher for Never {
    fn refresh<'a>(&'a self, _current: &'a SecretString) -> RefreshFuture<'a> {
        Box::pin(async { Err(RefreshError::Unavailable("fuzzing".into())) })
    }
}

fn key() -> SigningKey {
    SigningKey::hs256("k", &SecretBox::new(SECRET.to_vec().into_boxed_slice())).expect("key")
}

fn sign(payload: &str) -> String {
    let header = r#"{"alg":"HS256","typ":"manta-access+jwt","kid":"k"}"#;
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET),
        input.as_bytes(),
    );
    format!("{input}.{}", B64.encode(mac.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let now = input.clock();
    let exp_leeway = u64::from(input.byte()) * 300 / 255;
    let nbf_leeway = u64::from(input.byte()) * 300 / 255;
    let mut payload = String::from(r#"{"iss":"i","aud":"a","kind":"access","sub":"s","jti":"j""#);
    for name in ["exp", "nbf", "iat"] {
        if let Some(n) = input.number() {
            payload.push_str(&format!(r#","{name}":{n}"#));
        }
    }
    payload.push('}');
    let token = sign(&payload);

    let clock = ManualClock::new(now);
    let shared: Arc<ManualClock> = Arc::new(clock.clone());
    let mut config = VerifierConfig::new("i", "a");
    config.exp_leeway = Duration::from_secs(exp_leeway);
    config.nbf_leeway = Duration::from_secs(nbf_leeway);
    let mut keys = KeySet::new();
    keys.insert(key().verifying_key().clone());
    let deny = Arc::new(DenyList::new());
    let verifier = Verifier::new(config, keys)
        .expect("verifier")
        .with_clock(shared.clone())
        .with_revocation(deny.clone());

    let _ = manta_auth::Claims::from_json(payload.as_bytes());
    let strict = verifier.verify(&token, TokenKind::UserAccess);
    let _ = verifier.verify_allow_expired(&token, TokenKind::UserAccess);
    if let Ok(v) = &strict {
        // What verifies is inside its window, whatever the clock says.
        let t = clock.unix_now();
        let exp = v.claims.exp.expect("a verified token has exp");
        assert!(exp <= MAX_TIME_CLAIM);
        assert!(t <= exp.saturating_add(exp_leeway), "{payload} at {t}");
        if let Some(nbf) = v.claims.nbf {
            assert!(nbf <= t.saturating_add(nbf_leeway), "{payload} at {t}");
        }
        deny.revoke_jti("j", exp);
        deny.revoke_subject_before("s", v.claims.iat.unwrap_or(0).saturating_add(1));
        let _ = verifier.verify(&token, TokenKind::UserAccess);
        deny.prune(t);
    }

    let cache = CachingVerifier::new(
        Verifier::new(VerifierConfig::new("i", "a"), {
            let mut k = KeySet::new();
            k.insert(key().verifying_key().clone());
            k
        })
        .expect("verifier")
        .with_clock(shared.clone()),
        2,
    );
    for _ in 0..2 {
        let _ = cache.verify(&token, TokenKind::UserAccess);
    }

    if let Ok(seen) = inspect(&token) {
        let _ = seen.to_string();
        let _ = seen.expires_at();
        let _ = seen.time_left(SystemTime::UNIX_EPOCH);
        let _ = seen.time_left(clock.now());
    }

    let mut refresh = RefreshConfig::default();
    refresh.refresh_fraction = f64::from(input.byte().max(1)) / 255.0;
    refresh.jitter_fraction = refresh.refresh_fraction * f64::from(input.byte()) / 256.0;
    refresh.margin = Duration::from_millis(input.u64());
    let (a, b) = (input.u64(), input.u64());
    let jitter = f64::from_bits(input.u64());
    let at = refresh.refresh_at_ms(a, b, jitter);
    assert!(at <= a.max(b), "{a} {b} {jitter}: {at}");
    if let Ok(source) = TokenSource::with_clock(
        SecretString::from(token.clone()),
        Arc::new(Never),
        refresh,
        shared.clone(),
    ) {
        let _ = source.expires_at();
        let _ = source.refresh_due_in();
    }

    if let Ok(issuer) = Issuer::new("i", "a", key()) {
        let mut issuer = issuer.with_clock(shared);
        let lifetime = Duration::from_secs(input.u64());
        let _ = issuer.issue(&TokenRequest::new(TokenKind::UserAccess, "s").lifetime(lifetime));
        issuer.rotate(key(), Duration::from_secs(input.u64()));
        let _ = issuer.key_set();
    }
});
