//! Claim times at the edges of JSON and of the integer types (0, -1, 2^53, 2^63, u64::MAX,
//! 1e19, 1.5e308, ...) in correctly signed tokens: every entry point that reads a time claim
//! answers with a typed error or a value, never a panic.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use manta_auth::{
    CachingVerifier, Error, KeySet, MAX_TIME_CLAIM, ManualClock, RefreshConfig, RefreshError,
    RefreshFuture, Refresher, SigningKey, TokenKind, TokenSource, Verifier, VerifierConfig,
    inspect,
};
use secrecy::{SecretBox, SecretString};

const SECRET: &[u8] = b"extreme-claims-test-secret-32-bytes!";
const NOW: u64 = 1_800_000_000;

/// The extreme values, as written in the JSON payload.
const VALUES: [&str; 16] = [
    "0",
    "-1",
    "9007199254740992",     // 2^53
    "9223372036854775807",  // 2^63 - 1
    "9223372036854775808",  // 2^63
    "18446744073709551615", // u64::MAX
    "18446744073709551616", // u64::MAX + 1
    "10000000000000000000", // 1e19 as an integer
    "1e19",
    "1.5e308",
    "-9223372036854775808",
    "-1.5e308",
    "253402300799", // MAX_TIME_CLAIM, 9999-12-31T23:59:59Z
    "253402300800",
    "1800000000.5",
    "1e400",
];

fn verifier(clock: &ManualClock) -> Verifier {
    let key = SigningKey::hs256("h", &SecretBox::new(SECRET.to_vec().into_boxed_slice())).unwrap();
    let mut keys = KeySet::new();
    keys.insert(key.verifying_key().clone());
    Verifier::new(VerifierConfig::new("iss", "aud"), keys)
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
}

/// A user access token with `times` (e.g. `"exp":1`) correctly signed with [`SECRET`].
fn sign(times: &str) -> String {
    let header = r#"{"alg":"HS256","typ":"manta-access+jwt","kid":"h"}"#;
    let payload = format!(r#"{{"iss":"iss","aud":"aud","kind":"access","sub":"u",{times}}}"#);
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET),
        input.as_bytes(),
    );
    format!("{input}.{}", B64.encode(mac.as_ref()))
}

struct Never;

impl Refresher for Never {
    fn refresh<'a>(&'a self, _current: &'a SecretString) -> RefreshFuture<'a> {
        Box::pin(async { Err(RefreshError::Unavailable("no server in this test".into())) })
    }
}

/// Runs every reader of claim times over `token` and returns the verifier's answer.
fn exercise(token: &str, clock: &ManualClock) -> Result<(), Error> {
    let v = verifier(clock);
    let strict = v.verify(token, TokenKind::UserAccess).map(|_| ());
    let lax = v.verify_allow_expired(token, TokenKind::UserAccess);
    let cache = CachingVerifier::new(verifier(clock), 4);
    let cached = cache.verify(token, TokenKind::UserAccess).map(|_| ());
    assert_eq!(format!("{strict:?}"), format!("{cached:?}"), "{token}");
    drop(lax);
    if let Ok(seen) = inspect(token) {
        let _ = seen.to_string();
        let _ = seen.expires_at();
        let _ = seen.time_left(SystemTime::UNIX_EPOCH);
        let _ = seen.time_left(SystemTime::now());
    }
    let source = TokenSource::with_clock(
        SecretString::from(token.to_owned()),
        Arc::new(Never),
        RefreshConfig::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let _ = source.expires_at();
    let _ = source.refresh_due_in();
    strict
}

fn is_out_of_range(r: &Result<(), Error>, claim: &str) -> bool {
    matches!(r, Err(e @ Error::BadClaim { .. })
        if e.to_string().contains(&format!("claim `{claim}` is out of range")))
}

#[test]
fn extreme_nbf_exp_and_iat_are_refused_or_accepted_without_panicking() {
    let clock = ManualClock::new(NOW);
    for value in VALUES {
        for claim in ["nbf", "iat", "exp"] {
            let times = match claim {
                "exp" => format!(r#""exp":{value}"#),
                other => format!(r#""exp":{},"{other}":{value}"#, NOW + 60),
            };
            let token = sign(&times);
            let got = exercise(&token, &clock);
            let int: Option<i128> = value.parse().ok();
            match int {
                Some(n) if n < 0 => assert!(
                    matches!(
                        &got,
                        Err(Error::BadClaim {
                            problem: "negative",
                            ..
                        })
                    ),
                    "{times}: {got:?}"
                ),
                Some(n) if n > i128::from(MAX_TIME_CLAIM) && n <= i128::from(u64::MAX) => {
                    assert!(is_out_of_range(&got, claim), "{times}: {got:?}");
                    let msg = got.unwrap_err().to_string();
                    assert!(!msg.contains(value), "the claim value is echoed: {msg}");
                }
                Some(n) if n > i128::from(u64::MAX) => assert!(
                    matches!(&got, Err(Error::BadClaim { .. })),
                    "{times}: {got:?}"
                ),
                Some(_) => match (claim, value) {
                    ("exp", "0") => assert!(matches!(got, Err(Error::Expired { .. })), "{got:?}"),
                    ("nbf", "253402300799") => {
                        assert!(matches!(got, Err(Error::NotYetValid { .. })), "{got:?}");
                    }
                    _ => assert!(got.is_ok(), "{times}: {got:?}"),
                },
                None => assert!(
                    matches!(&got, Err(Error::BadClaim { .. } | Error::Malformed { .. })),
                    "{times}: {got:?}"
                ),
            }
        }
    }
}

#[test]
fn the_largest_accepted_time_is_the_end_of_year_9999() {
    let clock = ManualClock::new(NOW);
    let token = sign(&format!(r#""exp":{MAX_TIME_CLAIM}"#));
    exercise(&token, &clock).unwrap();
    let seen = inspect(&token).unwrap();
    assert_eq!(
        seen.expires_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
    );
    let too_late = sign(&format!(r#""exp":{}"#, MAX_TIME_CLAIM + 1));
    let err = inspect(&too_late).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token claim `exp` is out of range (after the year 9999); ask the issuer for a token \
         with a valid `exp`"
    );
}

#[test]
fn an_extreme_clock_does_not_panic_the_verifier_or_the_refresh_engine() {
    for now in [0, 1, MAX_TIME_CLAIM, u64::MAX / 1000, u64::MAX] {
        let clock = ManualClock::new(now);
        for times in [
            format!(r#""exp":{MAX_TIME_CLAIM},"nbf":{MAX_TIME_CLAIM},"iat":0"#),
            r#""exp":1,"nbf":0,"iat":1"#.to_owned(),
        ] {
            let _ = exercise(&sign(&times), &clock);
        }
    }
}

#[test]
fn the_refresh_schedule_saturates_instead_of_overflowing() {
    let mut config = RefreshConfig::default();
    // Refreshing at the very end of the life makes float rounding reach past `exp`.
    config.refresh_fraction = 1.0;
    config.jitter_fraction = 0.0;
    for (iat, exp) in [
        (0, u64::MAX),
        (1, u64::MAX),
        (u64::MAX, u64::MAX),
        (u64::MAX, 0),
        (u64::MAX - 1, u64::MAX),
    ] {
        for jitter in [0.0, 0.5, 1.0, f64::NAN, f64::INFINITY, -1.0] {
            let at = config.refresh_at_ms(iat, exp, jitter);
            assert!(at <= exp.max(iat), "{iat} {exp} {jitter}: {at}");
        }
    }
}

#[tokio::test]
async fn huge_backoff_settings_do_not_overflow_the_retry_time() {
    let clock = ManualClock::new(NOW);
    let mut config = RefreshConfig::default();
    config.backoff_initial = Duration::from_secs(u64::MAX);
    config.backoff_max = Duration::from_secs(u64::MAX);
    let expired = sign(&format!(r#""exp":{},"iat":{}"#, NOW - 10, NOW - 100));
    let source = TokenSource::with_clock(
        SecretString::from(expired),
        Arc::new(Never),
        config,
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert!(matches!(source.token().await, Err(Error::Refresh(_))));
    // The retry is pushed to the end of time, not wrapped around to the past.
    assert!(source.refresh_due_in().unwrap() > Duration::from_secs(86_400 * 365));
    clock.advance(Duration::from_secs(3600));
    let _ = source.token().await;
}
