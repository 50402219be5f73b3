//! The real binary on tokens whose unverified `exp` is absurdly large: a configuration error
//! with the reason (exit 78), never a panic (exit 101).

use crate::support::{Home, bin, cli};

/// A JWT-shaped token whose payload is `{"sub":"node-abc123","exp":EXP}` with `exp` written
/// as given (so `1e19` stays a JSON float).
fn token_with_exp(exp: &str) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b.encode(format!(r#"{{"sub":"node-abc123","exp":{exp}}}"#)),
        b.encode(b"signature-bytes")
    )
}

const CONFIG: &str = "[identity]\nsecured_token = \"${T}\"\nalias = \"worker-1\"\n";

#[test]
fn validate_and_start_refuse_an_exp_past_the_year_9999_with_exit_78() {
    for exp in [
        "1e19",
        "10000000000000000000",
        "18446744073709551615",
        "9223372036854775808",
        "1.5e308",
    ] {
        let home = Home::new();
        home.write("n", CONFIG);
        let token = token_with_exp(exp);
        for args in [&["config", "validate", "n"][..], &["start", "n"][..]] {
            let out = bin(&home, args, &[("T", token.as_str())]);
            // Both print the same report on standard error.
            let all = out.stderr;
            assert_eq!(out.code, 78, "{args:?} exp={exp}: {all}");
            assert!(
                all.starts_with("Error: Invalid or expired JWT token\n"),
                "{args:?} exp={exp}: {all}"
            );
            assert!(
                all.contains("(the exp claim is out of range: after the year 9999)"),
                "{args:?} exp={exp}: {all}"
            );
            assert!(!all.contains("panicked"), "{all}");
            assert!(!all.contains(&token), "the token was printed");
        }
    }
}

#[test]
fn show_resolved_prints_the_latest_representable_expiry_without_panicking() {
    let home = Home::new();
    home.write("n", CONFIG);
    let token = token_with_exp("253402300799");
    let out = cli(
        &home.env(&[("T", token.as_str())]),
        &["config", "show", "n", "--resolved"],
        "",
        false,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("identity.secured_token = [REDACTED] (expires in"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&token), "the token was printed");
}
