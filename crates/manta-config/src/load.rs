//! The generic loader: substitution, TOML parsing, located errors, unknown-key suggestions
//! and the permission check for files that hold secrets.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::{ConfigError, Location};
use crate::fsutil;
use crate::subst::{self, Mode, Substituted};

/// Options for [`load_file`] and [`load_str`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    secret_keys: Vec<String>,
    allow_insecure_permissions: bool,
    missing_hint: Option<String>,
}

impl LoadOptions {
    /// Default options: no secret keys, permissions enforced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a dotted key path (e.g. `identity.secured_token`) as secret: its value is
    /// never shown in errors, and a file that holds it literally (not as a `${VAR}`
    /// reference) must not be readable by group or others.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_keys.push(key.into());
        self
    }

    /// Accepts a secret-holding file even when group or others can read it. Only for
    /// callers that have asked the user (e.g. a `--danger-allow-insecure-config` flag).
    pub fn danger_allow_insecure_permissions(mut self, allow: bool) -> Self {
        self.allow_insecure_permissions = allow;
        self
    }

    /// What to tell the user when the file is missing (e.g. which `init` command to run).
    pub fn missing_file_hint(mut self, hint: impl Into<String>) -> Self {
        self.missing_hint = Some(hint.into());
        self
    }
}

/// A loaded configuration with facts about where it came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The parsed value.
    pub value: T,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// Whether a secret key's value is written in the file itself (literally or as a
    /// default of a reference) rather than coming from the environment.
    pub holds_literal_secret: bool,
}

/// Loads a file: reads it (never creating it), substitutes `${VAR}` references from `env`,
/// parses it as `T`, and checks its permissions if it holds a secret literally.
///
/// `T` should use `#[serde(deny_unknown_fields)]` so that misspelled keys are reported with a
/// "did you mean" suggestion.
pub fn load_file<T: DeserializeOwned>(
    path: &Path,
    env: &Env,
    options: &LoadOptions,
) -> Result<Loaded<T>, ConfigError> {
    let hint = options
        .missing_hint
        .as_deref()
        .unwrap_or("check the path; loading never creates configuration files");
    let raw = fsutil::read_text(path, hint)?;
    let loaded = load_str_at(&raw, Some(path), env, options)?;
    if loaded.holds_literal_secret {
        fsutil::check_secret_file(path, options.allow_insecure_permissions)?;
    }
    Ok(loaded)
}

/// Like [`load_file`] for text that did not come from a file (no permission check).
pub fn load_str<T: DeserializeOwned>(
    text: &str,
    env: &Env,
    options: &LoadOptions,
) -> Result<Loaded<T>, ConfigError> {
    load_str_at(text, None, env, options)
}

pub(crate) fn load_str_at<T: DeserializeOwned>(
    raw: &str,
    path: Option<&Path>,
    env: &Env,
    options: &LoadOptions,
) -> Result<Loaded<T>, ConfigError> {
    let locate = |offset: usize, key: Option<String>| {
        let (line, column) = subst::line_col(raw, offset);
        // Where the text did not parse, the key is judged from the line itself.
        let key = key.or_else(|| subst::key_at(raw, offset));
        Location {
            path: path.map(Path::to_owned),
            line,
            column,
            key,
        }
    };
    let substituted = subst::substitute(raw, Mode::Expand(env), &mut Vec::new()).map_err(|e| {
        ConfigError::Substitution {
            location: locate(e.offset, None),
            kind: e.kind,
        }
    })?;
    let text: &str = &substituted.text;

    let table = DeTable::parse(text).map_err(|mut e| {
        // The parser keeps a copy of the whole input for its own Display; drop it at once.
        e.set_input(None);
        let offset = e.span().map_or(0, |s| substituted.map_offset(s.start));
        ConfigError::Syntax {
            location: locate(offset, None),
            message: e.message().to_owned(),
            hints: vec!["check quotes, brackets and `key = value` syntax on that line".to_owned()],
        }
    })?;

    let holds_literal_secret = options
        .secret_keys
        .iter()
        .any(|key| literal_secret(table.get_ref(), key, &substituted, raw));

    let de = toml::de::Deserializer::from(table);
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let mut inner = e.into_inner();
        inner.set_input(None);
        let span = inner.span();
        let offset = span.as_ref().map_or(0, |s| substituted.map_offset(s.start));
        let key_opt = (key != ".").then(|| key.clone());
        let secret = options.secret_keys.contains(&key);
        let touched = span
            .as_ref()
            .is_some_and(|s| substituted.touches_substitution(s));
        let forms = span
            .as_ref()
            .map(|s| secret_forms(&substituted, s, secret))
            .unwrap_or_default();
        let message = Zeroizing::new(redact_forms(inner.message(), &forms));
        classify(&message, locate(offset, key_opt), secret || touched)
    })?;
    Ok(Loaded {
        value,
        path: path.map(Path::to_owned),
        holds_literal_secret,
    })
}

/// Turns a serde message into the right error, redacting values when they may be secret.
fn classify(message: &str, location: Location, redact: bool) -> ConfigError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        let suggestion = if redact {
            None
        } else {
            suggest(key, known.iter().copied())
        };
        let key = if redact {
            "[REDACTED]".to_owned()
        } else {
            key.to_owned()
        };
        // serde_path_to_error's path already ends with the unknown key; when the value
        // is redacted so is the path, as a key written through `${...}` may be secret.
        let location = if redact {
            Location {
                key: Some(key.clone()),
                ..location
            }
        } else {
            location
        };
        return ConfigError::UnknownKey {
            location,
            key,
            suggestion,
        };
    }
    let message = if redact {
        redact_values(message)
    } else {
        message.to_owned()
    };
    let mut hints = Vec::new();
    if message.contains("expected a boolean") {
        hints.push("write true or false, without quotes".to_owned());
    } else if message.contains("expected u") || message.contains("expected i") {
        hints.push("write a whole number, without quotes".to_owned());
    } else if message.starts_with("missing field") {
        hints.push("add the key to the file".to_owned());
    } else if message.contains("expected a string") {
        hints.push("write the value in double quotes".to_owned());
    }
    ConfigError::Invalid {
        location,
        message,
        hints,
    }
}

/// The backtick-quoted words of a serde message (`expected one of `a`, `b``).
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Replaces every quoted or backticked fragment of a message with `[REDACTED]`.
///
/// serde quotes string values with `Debug`, so inside `"..."` a backslash escapes the next
/// character (`"sec\"ret"` is one fragment); other values go in backticks unescaped.
fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let Some(open) = rest.find(['"', '`']) else {
            out.push_str(rest);
            return out;
        };
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..open]);
        out.push_str("[REDACTED]");
        let body = &rest.as_bytes()[open + 1..];
        let mut i = 0;
        let close = loop {
            match body.get(i) {
                None => return out,
                Some(b'\\') if quote == b'"' => i += 2,
                Some(&b) if b == quote => break i,
                Some(_) => i += 1,
            }
        };
        // `close` indexes an ASCII quote, so the slice stays on a character boundary.
        rest = &rest[open + 1 + close + 1..];
    }
}

/// The forms in which a possibly secret value can appear in a parser message: its TOML
/// text, the decoded string and that string `Debug`-escaped. The sources are the
/// substituted values inside `span` and, for a secret key, the whole value at `span`.
fn secret_forms(s: &Substituted, span: &Range<usize>, whole_value: bool) -> Vec<Zeroizing<String>> {
    let text: &str = &s.text;
    let mut sources: Vec<&str> = s
        .segments
        .iter()
        .filter(|seg| seg.out_start < span.end && span.start < seg.out_end)
        .filter_map(|seg| text.get(seg.out_start..seg.out_end))
        .collect();
    if whole_value && let Some(value) = text.get(span.clone()) {
        sources.push(value);
    }
    let mut forms = Vec::new();
    for source in sources {
        forms.push(Zeroizing::new(source.to_owned()));
        // A value substituted inside a basic string is an escaped body without quotes.
        let quoted = Zeroizing::new(format!("\"{source}\""));
        let decoded = [source, quoted.as_str()].into_iter().find_map(|t| {
            match DeValue::parse(t).ok()?.into_inner() {
                DeValue::String(v) => Some(Zeroizing::new(v.into_owned())),
                _ => None,
            }
        });
        if let Some(v) = decoded {
            let debug = Zeroizing::new(format!("{:?}", v.as_str()));
            forms.push(Zeroizing::new(debug[1..debug.len() - 1].to_owned()));
            forms.push(v);
        }
    }
    forms.retain(|f| !f.is_empty());
    // Longest first, so that a form containing another is replaced whole.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// Replaces each of `forms` in `message`: wherever it is quoted (`"form"`, `` `form` ``),
/// and anywhere once it is long enough not to match ordinary words of the message. The
/// quote-aware [`redact_values`] still runs afterwards when the value may be secret.
fn redact_forms(message: &str, forms: &[Zeroizing<String>]) -> String {
    // Shorter forms would also hit the message's own words ("a", "u16"); quoted, they are
    // still replaced above, and the fragment scan removes what is left.
    const ANYWHERE: usize = 4;
    let mut out = message.to_owned();
    for form in forms {
        for (open, close) in [('"', '"'), ('`', '`')] {
            let quoted = Zeroizing::new(format!("{open}{}{close}", form.as_str()));
            out = out.replace(quoted.as_str(), "[REDACTED]");
        }
        if form.chars().count() >= ANYWHERE {
            out = out.replace(form.as_str(), "[REDACTED]");
        }
    }
    out
}

/// The closest candidate to `word` within a small edit distance.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        // Optimal-string-alignment distance: edits plus adjacent transpositions, the typo
        // that plain Levenshtein over-counts (`alais` for `alias`).
        .map(|c| {
            (
                strsim::osa_distance(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

fn lookup<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    let mut parts = key.split('.');
    let first = parts.next()?;
    let mut value = table.iter().find(|(k, _)| k.get_ref() == first)?.1;
    for part in parts {
        let DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        value = t.iter().find(|(k, _)| k.get_ref() == part)?.1;
    }
    Some(value)
}

/// Whether the value at `key` is written in the file rather than fully taken from the
/// environment: any text outside `${...}` references (quotes aside), or a default that was
/// used.
fn literal_secret(table: &DeTable<'_>, key: &str, s: &Substituted, raw: &str) -> bool {
    let Some(value) = lookup(table, key) else {
        return false;
    };
    if let DeValue::String(v) = value.get_ref()
        && v.is_empty()
    {
        return false;
    }
    let span: Range<usize> = value.span();
    let segs: Vec<_> = s.segments_in(&span).collect();
    if segs.iter().any(|seg| seg.from_default) {
        return true;
    }
    // Walk the input text of the value, skipping references; anything else but quotes is
    // literal content.
    let in_start = s.map_offset(span.start);
    let in_end = s.map_offset(span.end);
    let mut pos = in_start;
    for seg in segs {
        if raw[pos..seg.in_start].chars().any(|c| c != '"') {
            return true;
        }
        pos = seg.in_end;
    }
    raw.get(pos..in_end)
        .is_some_and(|t| t.chars().any(|c| c != '"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are read through Debug in assertions")]
    struct Cfg {
        server: Server,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields are read through Debug in assertions")]
    struct Server {
        port: u16,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        password: Option<secrecy::SecretString>,
    }

    fn opts() -> LoadOptions {
        LoadOptions::new().secret_key("server.password")
    }

    fn load(text: &str, env: &Env) -> Result<Loaded<Cfg>, ConfigError> {
        load_str(text, env, &opts())
    }

    #[test]
    fn unknown_key_has_location_and_suggestion() {
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let err = load("[server]\nport = 1\nenabeld = true\n", &env).unwrap_err();
        let ConfigError::UnknownKey {
            location,
            key,
            suggestion,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(key, "enabeld");
        assert_eq!(suggestion.as_deref(), Some("enabled"));
        assert_eq!((location.line, location.column), (3, 1));
        assert_eq!(location.key.as_deref(), Some("server.enabeld"));
        assert!(err.to_string().contains("did you mean `enabled`?"), "{err}");

        let err = load("[sever]\nport = 1\n", &env).unwrap_err();
        assert!(err.to_string().contains("did you mean `server`?"), "{err}");
        let err = load("[server]\nport = 1\nzzzzzz = 1\n", &env).unwrap_err();
        assert!(err.to_string().contains("remove it"), "{err}");
    }

    #[test]
    fn type_errors_name_line_after_substitution_and_hide_values() {
        let env = Env::from_pairs([("P", "a-secret-port"), ("B", "maybe")]);
        let err = load("[server]\n  port = ${P}\n", &env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":2:10"), "{text}");
        assert!(text.contains("server.port"), "{text}");
        assert!(!text.contains("a-secret-port"), "{text}");
        let err = load("[server]\nport = 1\nenabled = ${B}\n", &env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("true or false"), "{text}");
        assert!(!text.contains("maybe"), "{text}");
    }

    #[test]
    fn secret_field_value_never_appears_even_when_literal() {
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        let err = load("[server]\nport = 1\npassword = 123456789\n", &env).unwrap_err();
        assert!(!err.to_string().contains("123456789"), "{err}");
        assert!(err.to_string().contains("server.password"), "{err}");
    }

    #[test]
    fn syntax_errors_are_located_in_the_original_text() {
        let env = Env::from_pairs([("LONG", "x".repeat(100))]);
        let err = load("[server]\nport = 1\nenabled = \"${LONG}\" x\n", &env).unwrap_err();
        let ConfigError::Syntax { location, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(location.line, 3);
        assert_eq!(location.column, 21, "{err}");
    }

    #[test]
    fn literal_secret_detection() {
        let env = Env::from_pairs([("PW", "from-env")]);
        let cases = [
            ("password = \"${PW}\"", false),
            ("password = ${PW}", false),
            ("password = \"${NOPE:dflt}\"", true),
            ("password = \"${PW:dflt}\"", false),
            ("password = \"pre-${PW}\"", true),
            ("password = \"hunter2\"", true),
            ("password = \"\"", false),
            ("", false),
        ];
        for (line, want) in cases {
            let text = format!("[server]\nport = 1\n{line}\n");
            let got = load(&text, &env).unwrap().holds_literal_secret;
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(
            suggest("alais", ["alias", "random_id"]),
            Some("alias".into())
        );
        assert_eq!(suggest("xyz", ["alias", "random_id"]), None);
        assert_eq!(
            redact_values("invalid type: string \"tok\", expected `u16`"),
            "invalid type: string [REDACTED], expected [REDACTED]"
        );
    }
}
