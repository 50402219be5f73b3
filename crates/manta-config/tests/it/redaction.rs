//! Values that may be secret never reach error text, whatever escapes they contain: quotes,
//! backslashes, newlines, unicode escapes, backticks, multi-line and literal strings.

use manta_config::{Env, LoadOptions, load_str};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "only the errors are looked at")]
struct Cfg {
    server: Server,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "only the errors are looked at")]
struct Server {
    #[serde(default)]
    port: u16,
    #[serde(default)]
    mode: Option<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Fast,
    Safe,
}

/// The error text of loading `text` with `vars`, `server.port` and `server.mode` secret.
fn error_text(text: &str, vars: &[(&str, &str)]) -> String {
    let env = Env::from_pairs(vars.iter().copied());
    let options = LoadOptions::new()
        .secret_key("server.port")
        .secret_key("server.mode");
    load_str::<Cfg>(text, &env, &options)
        .unwrap_err()
        .to_string()
}

/// Asserts that none of `pieces` shows in `text`.
fn hidden(text: &str, pieces: &[&str], case: &str) {
    for p in pieces {
        assert!(!text.contains(p), "{case}: `{p}` leaked in: {text}");
    }
    assert!(text.contains("[REDACTED]"), "{case}: {text}");
}

#[test]
fn substituted_values_with_escapes_are_redacted_whole() {
    // Each value is substituted into a field of the wrong type, so the parser's message
    // quotes it (Debug-escaped) and redaction must remove all of it.
    let cases: &[(&str, &[&str])] = &[
        ("sec\"ret\"value", &["sec", "ret", "value"]),
        ("back\\sl\\\\ash", &["back", "sl", "ash"]),
        ("multi\nline\r\nsecret", &["multi", "line", "secret"]),
        ("uni\u{7}code\u{1F600}esc\u{e9}", &["uni", "code", "esc"]),
        ("tick`ed`value", &["tick", "ed`", "value"]),
        ("\"", &["\\\""]),
        ("mixed\\\"`'$${}", &["mixed"]),
    ];
    for (value, pieces) in cases {
        for text in [
            "[server]\nport = \"${N}\"\n",
            "[server]\nport = ${N}\n",
            "[server]\nport = \"pre-${N}-post\"\n",
            "[server]\nport = \"\"\"${N}\"\"\"\n",
        ] {
            let shown = error_text(text, &[("N", value)]);
            hidden(&shown, pieces, &format!("{value:?} in {text:?}"));
            assert!(shown.contains("server.port"), "{shown}");
        }
    }
}

#[test]
fn the_published_example_no_longer_leaks_its_middle() {
    let shown = error_text("[server]\nport = \"${N}\"\n", &[("N", "sec\"ret\"value")]);
    assert!(!shown.contains("ret\\"), "{shown}");
    assert!(
        shown.contains("invalid type: string [REDACTED], expected u16"),
        "{shown}"
    );
}

#[test]
fn literal_secret_values_with_escapes_are_redacted_whole() {
    let cases: &[(&str, &[&str])] = &[
        (r#"port = "sec\"ret\"value""#, &["sec", "ret", "value"]),
        (r#"port = "a\\b\\c-secret""#, &["secret"]),
        (r#"port = "uni\u00e9code\U0001F600x""#, &["uni", "code"]),
        (
            "port = \"\"\"multi\nline \"quoted\" secret\"\"\"",
            &["multi", "line", "quoted", "secret"],
        ),
        (
            "port = \"\"\"folded \\\n   continuation\"\"\"",
            &["folded", "continuation"],
        ),
        (r#"port = 'lit"er`al'"#, &["lit", "er`", "al'"]),
        ("port = '''ml\nlit\"eral'''", &["ml", "lit", "eral"]),
        ("port = 123456789", &["123456789"]),
        ("port = 1.5e300", &["1.5e300"]),
        (r#"mode = "sl`o`w""#, &["sl", "o`w", "`o`"]),
        (r#"mode = "we\"ird`""#, &["we", "ird"]),
    ];
    for (line, pieces) in cases {
        let text = format!("[server]\n{line}\n");
        let shown = error_text(&text, &[]);
        hidden(&shown, pieces, line);
    }
}

#[test]
fn values_that_are_not_secret_still_show_in_errors() {
    let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
    let err = load_str::<Cfg>("[server]\nport = \"eighty\"\n", &env, &LoadOptions::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"eighty\""), "{err}");
}
