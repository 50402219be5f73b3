//! Redaction of anything that looks like a token in text that came from outside (server
//! messages, transport errors), so no token reaches an error message or a log line.

/// The prefix of the manager's session refresh tokens (`mrt_` and 64 hex characters).
const REFRESH_PREFIX: &str = "mrt_";

/// Replaces every JWT-shaped word (three or more base64url segments joined by dots, the
/// first starting with `eyJ`, the base64url of `{"`) and every session refresh token
/// (`mrt_` followed by hex) with `[REDACTED]`.
#[must_use]
pub fn redact_tokens(text: &str) -> String {
    redact_refresh_tokens(&redact_jwts(text))
}

fn redact_refresh_tokens(text: &str) -> String {
    if !text.contains(REFRESH_PREFIX) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(REFRESH_PREFIX) {
        let at_word_start = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        let tail = &rest[i + REFRESH_PREFIX.len()..];
        let end = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        out.push_str(&rest[..i]);
        if at_word_start && end > 0 {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(&rest[i..i + REFRESH_PREFIX.len() + end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_jwts(text: &str) -> String {
    if !text.contains("eyJ") {
        return text.to_owned();
    }
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("eyJ") {
        // Only at a word start, so "keyJ" inside a word is left alone.
        let at_word_start = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_b64(c) && c != '.');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(is_b64(c) || c == '.'))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        let dots = candidate.matches('.').count();
        out.push_str(&rest[..i]);
        if at_word_start && dots >= 2 {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(candidate);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{redact_jwts, redact_tokens};

    #[test]
    fn jwts_are_replaced_and_other_text_kept() {
        let check =
            |input: &str, expected: &str| assert_eq!(redact_jwts(input), expected, "{input}");
        check("no token here", "no token here");
        check("t=eyJa.eyJb.sig!", "t=[REDACTED]!");
        check("eyJa.eyJb.sig and eyJc.d.e", "[REDACTED] and [REDACTED]");
        check("keyJ.a.b stays", "keyJ.a.b stays");
        check("eyJonly-one-part", "eyJonly-one-part");
        check("eyJtwo.parts", "eyJtwo.parts");
    }

    #[test]
    fn refresh_tokens_are_replaced_too() {
        let check =
            |input: &str, expected: &str| assert_eq!(redact_tokens(input), expected, "{input}");
        check(
            "reused mrt_0a1b2c3d, family revoked",
            "reused [REDACTED], family revoked",
        );
        check(
            "jwt eyJa.eyJb.c and mrt_ff",
            "jwt [REDACTED] and [REDACTED]",
        );
        check(
            "smrt_00 and mrt_ and mrt_xyz stay",
            "smrt_00 and mrt_ and mrt_xyz stay",
        );
    }
}
