//! `${VAR}` substitution on raw TOML text, aware of strings and comments.
//!
//! Substitution runs before TOML parsing so that an unquoted reference can produce a number
//! or a boolean. A small lexer tracks whether a reference sits in bare TOML, in a basic
//! string or in a comment, because the inserted value must be encoded differently in each.
//! Inserted text never contains a newline, so line numbers of the result equal those of the
//! input; [`Substituted::map_offset`] maps columns back.

use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::SubstitutionErrorKind;

/// An error found while substituting, located in the input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubstError {
    /// Byte offset of the `$` that starts the reference.
    pub(crate) offset: usize,
    pub(crate) kind: SubstitutionErrorKind,
}

/// One replaced region: `input[in_start..in_end]` became `output[out_start..out_end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) in_start: usize,
    pub(crate) in_end: usize,
    pub(crate) out_start: usize,
    pub(crate) out_end: usize,
    /// The value came (at least partly) from a default written in the file, so the file
    /// itself holds that text.
    pub(crate) from_default: bool,
}

/// The result of substitution: the text plus how it maps back to the input.
pub(crate) struct Substituted {
    pub(crate) text: Zeroizing<String>,
    pub(crate) segments: Vec<Segment>,
}

impl Substituted {
    /// Maps a byte offset in the output to the input offset it came from. Offsets inside an
    /// inserted value map to the start of its reference.
    pub(crate) fn map_offset(&self, out: usize) -> usize {
        let mut delta: isize = 0;
        for seg in &self.segments {
            if out < seg.out_start {
                break;
            }
            if out < seg.out_end {
                return seg.in_start;
            }
            delta = seg.in_end as isize - seg.out_end as isize;
        }
        (out as isize + delta).max(0) as usize
    }

    /// Whether the output range touches a substituted value (whose text may be secret).
    pub(crate) fn touches_substitution(&self, range: &std::ops::Range<usize>) -> bool {
        self.segments
            .iter()
            .any(|s| s.out_start < range.end.max(range.start + 1) && range.start < s.out_end)
    }

    /// The segments lying inside an output range.
    pub(crate) fn segments_in(
        &self,
        range: &std::ops::Range<usize>,
    ) -> impl Iterator<Item = &Segment> {
        let range = range.clone();
        self.segments
            .iter()
            .filter(move |s| s.out_start >= range.start && s.out_end <= range.end)
    }
}

/// Where a reference appears, which decides how its value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside any string: scalars go in raw, anything else as a quoted string.
    Bare,
    /// Inside `"..."` or `"""..."""`: the value is escaped.
    Basic,
}

/// How references are treated.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// Replace references with their values.
    Expand(&'a Env),
    /// Keep references; replace bare ones with a quoted placeholder `"{prefix}{n}__"` so
    /// that the text parses as TOML for editing (see `edit.rs`).
    Placeholder(&'a str),
}

/// Output of [`substitute`] in placeholder mode: the original text of each bare reference.
pub(crate) type Placeholders = Vec<String>;

/// Substitutes every reference in `input`.
pub(crate) fn substitute(
    input: &str,
    mode: Mode<'_>,
    placeholders: &mut Placeholders,
) -> Result<Substituted, SubstError> {
    let bytes = input.as_bytes();
    let mut out = Zeroizing::new(String::with_capacity(input.len() + 64));
    let mut segments = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    let mut state = State::Bare;

    while i < bytes.len() {
        let b = bytes[i];
        match state {
            State::Comment => {
                if b == b'\n' {
                    state = State::Bare;
                }
                i += 1;
            }
            State::Literal => {
                if b == b'\'' || b == b'\n' {
                    state = State::Bare;
                }
                i += 1;
            }
            State::MlLiteral => {
                if bytes[i..].starts_with(b"'''") {
                    i += quote_run(bytes, i, b'\'');
                    state = State::Bare;
                } else {
                    i += 1;
                }
            }
            State::Basic | State::MlBasic => {
                if b == b'\\' {
                    // An escape: the next character cannot end the string or start a
                    // reference. Step over a whole UTF-8 character to stay on boundaries.
                    i += 1;
                    if i < bytes.len() {
                        i += utf8_len(bytes[i]);
                    }
                } else if state == State::Basic && (b == b'"' || b == b'\n') {
                    state = State::Bare;
                    i += 1;
                } else if state == State::MlBasic && bytes[i..].starts_with(b"\"\"\"") {
                    i += quote_run(bytes, i, b'"');
                    state = State::Bare;
                } else if b == b'$' {
                    i = reference(
                        input,
                        i,
                        Context::Basic,
                        mode,
                        &mut out,
                        &mut copied,
                        &mut segments,
                        placeholders,
                    )?;
                } else {
                    i += 1;
                }
            }
            State::Bare => match b {
                b'#' => {
                    state = State::Comment;
                    i += 1;
                }
                b'"' => {
                    if bytes[i..].starts_with(b"\"\"\"") {
                        state = State::MlBasic;
                        i += 3;
                    } else {
                        state = State::Basic;
                        i += 1;
                    }
                }
                b'\'' => {
                    if bytes[i..].starts_with(b"'''") {
                        state = State::MlLiteral;
                        i += 3;
                    } else {
                        state = State::Literal;
                        i += 1;
                    }
                }
                b'$' => {
                    i = reference(
                        input,
                        i,
                        Context::Bare,
                        mode,
                        &mut out,
                        &mut copied,
                        &mut segments,
                        placeholders,
                    )?;
                }
                _ => i += 1,
            },
        }
    }
    out.push_str(&input[copied..]);
    Ok(Substituted {
        text: out,
        segments,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Bare,
    Comment,
    Basic,
    MlBasic,
    Literal,
    MlLiteral,
}

/// Length of a run of `q` starting at `i`, capped so that a closing delimiter with up to two
/// quotes of content before it (`""""` or `"""""`) ends the string.
fn quote_run(bytes: &[u8], i: usize, q: u8) -> usize {
    let n = bytes[i..].iter().take_while(|&&c| c == q).count();
    n.min(5)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// Handles the `$` at `start`; returns the offset after what it consumed.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per lexer state, all local"
)]
fn reference(
    input: &str,
    start: usize,
    ctx: Context,
    mode: Mode<'_>,
    out: &mut Zeroizing<String>,
    copied: &mut usize,
    segments: &mut Vec<Segment>,
    placeholders: &mut Placeholders,
) -> Result<usize, SubstError> {
    let bytes = input.as_bytes();
    match bytes.get(start + 1) {
        Some(b'$') => {
            let end = start + 2;
            match (mode, ctx) {
                // In placeholder mode string content stays exactly as written.
                (Mode::Placeholder(_), Context::Basic) => {}
                (Mode::Placeholder(prefix), Context::Bare) => {
                    emit_placeholder(
                        input,
                        start,
                        end,
                        prefix,
                        out,
                        copied,
                        segments,
                        placeholders,
                    );
                }
                (Mode::Expand(_), _) => {
                    let value = if ctx == Context::Bare { "\"$\"" } else { "$" };
                    emit(input, start, end, value, false, out, copied, segments);
                }
            }
            Ok(end)
        }
        Some(b'{') => {
            let (expr, end) = parse_braced(input, start)?;
            match mode {
                Mode::Placeholder(prefix) => {
                    if ctx == Context::Bare {
                        emit_placeholder(
                            input,
                            start,
                            end,
                            prefix,
                            out,
                            copied,
                            segments,
                            placeholders,
                        );
                    }
                }
                Mode::Expand(env) => {
                    let mut from_default = false;
                    let value = expr.eval(env, &mut from_default)?;
                    let encoded = encode(&value, ctx);
                    emit(
                        input,
                        start,
                        end,
                        &encoded,
                        from_default,
                        out,
                        copied,
                        segments,
                    );
                }
            }
            Ok(end)
        }
        // A lone `$` (as in "costs $5") is literal text.
        _ => Ok(start + 1),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "plumbing shared by the lexer's call sites"
)]
fn emit(
    input: &str,
    start: usize,
    end: usize,
    value: &str,
    from_default: bool,
    out: &mut Zeroizing<String>,
    copied: &mut usize,
    segments: &mut Vec<Segment>,
) {
    out.push_str(&input[*copied..start]);
    let out_start = out.len();
    out.push_str(value);
    segments.push(Segment {
        in_start: start,
        in_end: end,
        out_start,
        out_end: out.len(),
        from_default,
    });
    *copied = end;
}

#[allow(
    clippy::too_many_arguments,
    reason = "plumbing shared by the lexer's call sites"
)]
fn emit_placeholder(
    input: &str,
    start: usize,
    end: usize,
    prefix: &str,
    out: &mut Zeroizing<String>,
    copied: &mut usize,
    segments: &mut Vec<Segment>,
    placeholders: &mut Placeholders,
) {
    let text = format!("\"{prefix}{}__\"", placeholders.len());
    placeholders.push(input[start..end].to_owned());
    emit(input, start, end, &text, false, out, copied, segments);
}

/// Encodes a value for its context. Zeroizing because the value may be a secret.
fn encode(value: &str, ctx: Context) -> Zeroizing<String> {
    match ctx {
        Context::Basic => escape_basic(value),
        Context::Bare if is_bare_scalar(value) => Zeroizing::new(value.to_owned()),
        Context::Bare => {
            let escaped = escape_basic(value);
            let mut s = Zeroizing::new(String::with_capacity(escaped.len() + 2));
            s.push('"');
            s.push_str(&escaped);
            s.push('"');
            s
        }
    }
}

/// Escapes a value so that it stays one TOML basic-string body whatever it contains.
pub(crate) fn escape_basic(value: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(value.len() + 8));
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {
                use std::fmt::Write as _;
                // Writing into a String cannot fail.
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => s.push(c),
        }
    }
    s
}

/// Whether a value can be inserted unquoted: `true`, `false` or a TOML integer or float.
/// Anything else (including `1.0.0`, dates and `007`) is quoted, so a value can never
/// inject TOML structure nor turn into a syntax error.
pub(crate) fn is_bare_scalar(v: &str) -> bool {
    if v == "true" || v == "false" {
        return true;
    }
    let (signed, body) = match v.as_bytes().first() {
        Some(b'+' | b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    if body == "inf" || body == "nan" {
        return true;
    }
    if !signed {
        let radix: [(&str, DigitTest); 3] = [
            ("0x", u8::is_ascii_hexdigit),
            ("0o", |b| (b'0'..=b'7').contains(b)),
            ("0b", |b| *b == b'0' || *b == b'1'),
        ];
        for (prefix, ok) in radix {
            if let Some(d) = body.strip_prefix(prefix) {
                return digits(d, ok);
            }
        }
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    digits(int, u8::is_ascii_digit)
        && !(int.len() > 1 && int.starts_with('0'))
        && frac.is_none_or(|f| digits(f, u8::is_ascii_digit))
        && exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e), u8::is_ascii_digit))
}

/// Tells whether a byte is a digit of some radix.
type DigitTest = fn(&u8) -> bool;

/// Digits accepted by `ok`, with single underscores only between digits.
fn digits(s: &str, ok: DigitTest) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes().filter(|b| *b != b'_').all(|b| ok(&b))
}

/// A parsed `${...}` reference.
#[derive(Debug)]
struct Expr {
    name: String,
    op: Op,
    word: Vec<Part>,
    /// Offset of the `$`, for error locations.
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `${VAR}`
    Plain,
    /// `${VAR:word}` and `${VAR:-word}`: word when unset or empty.
    DefaultUnsetOrEmpty,
    /// `${VAR-word}`: word when unset.
    DefaultUnset,
    /// `${VAR:?word}`: error when unset or empty.
    ErrorUnsetOrEmpty,
    /// `${VAR?word}`: error when unset.
    ErrorUnset,
}

#[derive(Debug)]
enum Part {
    Lit(String),
    Ref(Expr),
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses `${...}` starting at the `$` at `start`; returns it and the offset after `}`.
fn parse_braced(input: &str, start: usize) -> Result<(Expr, usize), SubstError> {
    let bytes = input.as_bytes();
    let err = |kind| SubstError {
        offset: start,
        kind,
    };
    let name_start = start + 2;
    let mut i = name_start;
    while i < bytes.len() && is_name_char(bytes[i]) {
        i += 1;
    }
    let name = &input[name_start..i];
    let next = bytes.get(i).copied();
    if name.is_empty() {
        return Err(match next {
            Some(b'}') => err(SubstitutionErrorKind::EmptyName),
            None | Some(b'\n') => err(SubstitutionErrorKind::Unterminated),
            Some(_) if !closes_on_line(bytes, i) => err(SubstitutionErrorKind::Unterminated),
            Some(_) => err(SubstitutionErrorKind::InvalidName {
                name: bad_name(input, i),
            }),
        });
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(err(SubstitutionErrorKind::InvalidName {
            name: name.to_owned(),
        }));
    }
    let (op, word_start) = match (next, bytes.get(i + 1).copied()) {
        (Some(b'}'), _) => {
            return Ok((
                Expr {
                    name: name.to_owned(),
                    op: Op::Plain,
                    word: Vec::new(),
                    offset: start,
                },
                i + 1,
            ));
        }
        (Some(b':'), Some(b'-')) => (Op::DefaultUnsetOrEmpty, i + 2),
        (Some(b':'), Some(b'?')) => (Op::ErrorUnsetOrEmpty, i + 2),
        (Some(b':'), _) => (Op::DefaultUnsetOrEmpty, i + 1),
        (Some(b'-'), _) => (Op::DefaultUnset, i + 1),
        (Some(b'?'), _) => (Op::ErrorUnset, i + 1),
        (None | Some(b'\n'), _) => return Err(err(SubstitutionErrorKind::Unterminated)),
        (Some(_), _) if !closes_on_line(bytes, i) => {
            return Err(err(SubstitutionErrorKind::Unterminated));
        }
        (Some(_), _) => {
            return Err(err(SubstitutionErrorKind::InvalidName {
                name: bad_name(input, name_start),
            }));
        }
    };
    let (word, end) = parse_word(input, word_start, start)?;
    Ok((
        Expr {
            name: name.to_owned(),
            op,
            word,
            offset: start,
        },
        end,
    ))
}

/// Whether a `}` follows on the same line, telling a bad name from a missing brace.
fn closes_on_line(bytes: &[u8], from: usize) -> bool {
    bytes[from..]
        .iter()
        .take_while(|&&b| b != b'\n')
        .any(|&b| b == b'}')
}

/// The text of an invalid name up to the closing brace (or a short prefix), for the error.
fn bad_name(input: &str, from: usize) -> String {
    input[from..]
        .split(['}', '\n'])
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect()
}

/// Parses a default or message up to the matching `}`; nested `${...}` and `$$` allowed.
fn parse_word(input: &str, mut i: usize, outer: usize) -> Result<(Vec<Part>, usize), SubstError> {
    let bytes = input.as_bytes();
    let mut parts = Vec::new();
    let mut lit = String::new();
    loop {
        match bytes.get(i) {
            None | Some(b'\n') => {
                return Err(SubstError {
                    offset: outer,
                    kind: SubstitutionErrorKind::Unterminated,
                });
            }
            Some(b'}') => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(lit));
                }
                return Ok((parts, i + 1));
            }
            Some(b'$') if bytes.get(i + 1) == Some(&b'$') => {
                lit.push('$');
                i += 2;
            }
            Some(b'$') if bytes.get(i + 1) == Some(&b'{') => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                let (expr, end) = parse_braced(input, i)?;
                parts.push(Part::Ref(expr));
                i = end;
            }
            Some(&b) => {
                let len = utf8_len(b);
                lit.push_str(&input[i..i + len]);
                i += len;
            }
        }
    }
}

impl Expr {
    /// Evaluates the reference. `from_default` is set when file text (a default) was used.
    fn eval(&self, env: &Env, from_default: &mut bool) -> Result<Zeroizing<String>, SubstError> {
        let value = env.get(&self.name);
        let unset = value.is_none();
        let empty = value.as_ref().is_some_and(|v| v.is_empty());
        let use_word = match self.op {
            Op::Plain => {
                return value.ok_or_else(|| SubstError {
                    offset: self.offset,
                    kind: SubstitutionErrorKind::Unset {
                        variable: self.name.clone(),
                    },
                });
            }
            Op::DefaultUnsetOrEmpty | Op::ErrorUnsetOrEmpty => unset || empty,
            Op::DefaultUnset | Op::ErrorUnset => unset,
        };
        if !use_word {
            // `use_word` is false only when the variable is set.
            return Ok(value.unwrap_or_default());
        }
        let word = eval_word(&self.word, env, from_default)?;
        match self.op {
            Op::ErrorUnsetOrEmpty | Op::ErrorUnset => Err(SubstError {
                offset: self.offset,
                kind: SubstitutionErrorKind::Required {
                    variable: self.name.clone(),
                    message: if word.is_empty() {
                        "set it before loading this configuration".to_owned()
                    } else {
                        word.to_string()
                    },
                },
            }),
            _ => {
                if self.word.iter().any(|p| matches!(p, Part::Lit(_))) {
                    *from_default = true;
                }
                Ok(word)
            }
        }
    }
}

fn eval_word(
    parts: &[Part],
    env: &Env,
    from_default: &mut bool,
) -> Result<Zeroizing<String>, SubstError> {
    let mut s = Zeroizing::new(String::new());
    for part in parts {
        match part {
            Part::Lit(l) => s.push_str(l),
            Part::Ref(e) => s.push_str(&e.eval(env, from_default)?),
        }
    }
    Ok(s)
}

/// Line and column (1-based, column in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The dotted key path of the `key = value` line holding `offset`, judged from the nearest
/// `[table]` header above it. A heuristic for error messages only, used where the text did
/// not parse (so no parser can tell): it ignores multi-line strings.
pub(crate) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    let mut table = String::new();
    for line in text[..line_start].lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('[') {
            let rest = rest.strip_prefix('[').unwrap_or(rest);
            if let Some(end) = rest.find(']') {
                table = rest[..end].trim().to_owned();
            }
        }
    }
    let before = &text[line_start..offset];
    let key = before
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with(['#', '[']));
    match (table.is_empty(), key) {
        (_, Some(k)) if table.is_empty() => Some(k.to_owned()),
        (_, Some(k)) => Some(format!("{table}.{k}")),
        (false, None) => Some(table),
        (true, None) => None,
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([
            ("HOST", "node-7"),
            ("EMPTY", ""),
            ("PORT", "6000"),
            ("FLAG", "true"),
            ("QUOTE", "a\"b\\c\nd"),
            ("REF", "${HOST}"),
            ("WORDS", "two words"),
            ("NEG", "-12"),
            ("FLOAT", "1.5e3"),
            ("VERSION", "1.0.0"),
            ("DATE", "2024-01-01"),
            ("ZEROS", "007"),
            ("HEX", "0x1F"),
            ("UNDERSCORE", "1_000"),
        ])
    }

    /// Substitutes `input` and compares with `expected`: `Ok(text)` or `Err(kind)` with the
    /// 1-based line and column of the reference.
    fn check(input: &str, expected: Expected) {
        let env = env();
        let got = substitute(input, Mode::Expand(&env), &mut Vec::new());
        match (got, expected) {
            (Ok(s), Ok(want)) => assert_eq!(s.text.as_str(), want, "input: {input}"),
            (Err(e), Err((kind, line, col))) => {
                assert_eq!(e.kind, kind, "input: {input}");
                assert_eq!(line_col(input, e.offset), (line, col), "input: {input}");
            }
            (got, want) => panic!(
                "input: {input}\n got: {:?}\nwant: {want:?}",
                got.map(|s| s.text.to_string())
            ),
        }
    }

    fn unset(v: &str) -> SubstitutionErrorKind {
        SubstitutionErrorKind::Unset {
            variable: v.to_owned(),
        }
    }

    /// Expected outcome: the substituted text, or the error with its line and column.
    type Expected = Result<&'static str, (SubstitutionErrorKind, usize, usize)>;

    #[test]
    fn substitution_table() {
        use SubstitutionErrorKind::*;
        let cases: &[(&str, Expected)] = &[
            // Plain references, inside strings and bare.
            ("a = \"${HOST}\"", Ok("a = \"node-7\"")),
            (
                "a = \"prod-worker-${HOST}\"",
                Ok("a = \"prod-worker-node-7\""),
            ),
            ("a = ${HOST}", Ok("a = \"node-7\"")),
            ("a = ${WORDS}", Ok("a = \"two words\"")),
            // Numbers and booleans stay typed when bare, and stay strings when quoted.
            ("p = ${PORT}", Ok("p = 6000")),
            ("p = \"${PORT}\"", Ok("p = \"6000\"")),
            ("f = ${FLAG}", Ok("f = true")),
            ("n = ${NEG}", Ok("n = -12")),
            ("x = ${FLOAT}", Ok("x = 1.5e3")),
            // Values that only look numeric stay strings rather than breaking the file.
            ("v = ${VERSION}", Ok("v = \"1.0.0\"")),
            ("v = ${DATE}", Ok("v = \"2024-01-01\"")),
            ("v = ${ZEROS}", Ok("v = \"007\"")),
            ("v = ${HEX}", Ok("v = 0x1F")),
            ("v = ${UNDERSCORE}", Ok("v = 1_000")),
            ("p = ${UNSET:50051}", Ok("p = 50051")),
            // Seed form: default when unset or empty; `${VAR:}` is empty.
            ("a = \"${UNSET:dflt}\"", Ok("a = \"dflt\"")),
            ("a = \"${EMPTY:dflt}\"", Ok("a = \"dflt\"")),
            ("a = \"${HOST:dflt}\"", Ok("a = \"node-7\"")),
            ("a = \"${UNSET:}\"", Ok("a = \"\"")),
            ("a = ${UNSET:}", Ok("a = \"\"")),
            // Compose forms: `:-` like the seed form, `-` only when unset.
            ("a = \"${UNSET:-x}\"", Ok("a = \"x\"")),
            ("a = \"${EMPTY:-x}\"", Ok("a = \"x\"")),
            ("a = \"${UNSET:--x}\"", Ok("a = \"-x\"")),
            ("a = \"${UNSET-x}\"", Ok("a = \"x\"")),
            ("a = \"${EMPTY-x}\"", Ok("a = \"\"")),
            ("a = \"${HOST-x}\"", Ok("a = \"node-7\"")),
            // Unset and empty differ for the plain form.
            ("a = \"${EMPTY}\"", Ok("a = \"\"")),
            ("a = \"${UNSET}\"", Err((unset("UNSET"), 1, 6))),
            ("x = 1\n\nb = \"v-${NOPE}\"", Err((unset("NOPE"), 3, 8))),
            // Required forms.
            (
                "a = \"${UNSET:?set the token}\"",
                Err((
                    Required {
                        variable: "UNSET".into(),
                        message: "set the token".into(),
                    },
                    1,
                    6,
                )),
            ),
            (
                "a = \"${EMPTY:?needed}\"",
                Err((
                    Required {
                        variable: "EMPTY".into(),
                        message: "needed".into(),
                    },
                    1,
                    6,
                )),
            ),
            ("a = \"${EMPTY?needed}\"", Ok("a = \"\"")),
            ("a = \"${HOST:?needed}\"", Ok("a = \"node-7\"")),
            // Escaping of inserted values keeps one valid string.
            ("a = \"${QUOTE}\"", Ok("a = \"a\\\"b\\\\c\\nd\"")),
            ("a = ${QUOTE}", Ok("a = \"a\\\"b\\\\c\\nd\"")),
            (
                "a = \"\"\"x ${QUOTE}\"\"\"",
                Ok("a = \"\"\"x a\\\"b\\\\c\\nd\"\"\""),
            ),
            // `$$` is a literal dollar; a lone `$` too.
            ("a = \"cost $$5\"", Ok("a = \"cost $5\"")),
            ("a = \"$${HOST}\"", Ok("a = \"${HOST}\"")),
            ("a = \"costs $5\"", Ok("a = \"costs $5\"")),
            // Single pass: a value that contains `${...}` is not expanded again.
            ("a = \"${REF}\"", Ok("a = \"${HOST}\"")),
            // Nesting in defaults.
            ("a = \"${UNSET:-${HOST}}\"", Ok("a = \"node-7\"")),
            (
                "a = \"${UNSET:-pre-${UNSET2:-in}-post}\"",
                Ok("a = \"pre-in-post\""),
            ),
            ("a = \"${HOST:-${UNSET}}\"", Ok("a = \"node-7\"")),
            ("a = \"${UNSET:-${NOPE}}\"", Err((unset("NOPE"), 1, 15))),
            // Comments and literal strings are never substituted.
            ("a = 1 # ${NOPE}", Ok("a = 1 # ${NOPE}")),
            ("# ${NOPE} ${\n a = 1", Ok("# ${NOPE} ${\n a = 1")),
            ("a = '${NOPE}'", Ok("a = '${NOPE}'")),
            ("a = '''${NOPE}'''", Ok("a = '''${NOPE}'''")),
            ("a = \"#${HOST}\"", Ok("a = \"#node-7\"")),
            ("a = \"\\\"${HOST}\"", Ok("a = \"\\\"node-7\"")),
            // Malformed references.
            ("a = \"${\"", Err((Unterminated, 1, 6))),
            ("a = \"${}\"", Err((EmptyName, 1, 6))),
            (
                "a = \"${1X}\"",
                Err((InvalidName { name: "1X".into() }, 1, 6)),
            ),
            (
                "a = \"${A B}\"",
                Err((InvalidName { name: "A B".into() }, 1, 6)),
            ),
            ("a = \"${HOST\"\nb = 1", Err((Unterminated, 1, 6))),
            ("a = ${HOST", Err((Unterminated, 1, 5))),
            ("a = \"${UNSET:-x\"", Err((Unterminated, 1, 6))),
            (
                "a = \"${é}\"",
                Err((InvalidName { name: "é".into() }, 1, 6)),
            ),
        ];
        for (input, expected) in cases {
            check(input, expected.clone());
        }
    }

    #[test]
    fn output_has_the_same_lines_and_maps_offsets_back() {
        let env = env();
        let input = "a = \"${QUOTE}\"\nb = ${PORT}x";
        let s = substitute(input, Mode::Expand(&env), &mut Vec::new()).unwrap();
        assert_eq!(s.text.lines().count(), input.lines().count());
        let x_out = s.text.find('x').unwrap();
        assert_eq!(&input[s.map_offset(x_out)..], "x");
        let inside = s.text.find("6000").unwrap() + 1;
        assert_eq!(s.map_offset(inside), input.find("${PORT}").unwrap());
        assert!(s.touches_substitution(&(inside..inside + 1)));
        assert!(!s.touches_substitution(&(0..1)));
    }

    #[test]
    fn key_at_names_the_key_of_the_line() {
        let text = "top = 1\n[identity]\nsecured_token = \"${X}\"\n[[peers]]\nkey = ${Y}\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap());
        assert_eq!(at("1").as_deref(), Some("top"));
        assert_eq!(at("${X}").as_deref(), Some("identity.secured_token"));
        assert_eq!(at("${Y}").as_deref(), Some("peers.key"));
        assert_eq!(at("[[peers]]").as_deref(), Some("identity"));
    }

    #[test]
    fn defaults_are_marked_as_file_text() {
        let env = env();
        let s = substitute(
            "a = \"${UNSET:tok}\" b = \"${HOST:tok}\"",
            Mode::Expand(&env),
            &mut Vec::new(),
        )
        .unwrap();
        assert!(s.segments[0].from_default);
        assert!(!s.segments[1].from_default);
    }

    #[test]
    fn placeholder_mode_keeps_string_references_and_marks_bare_ones() {
        let mut ph = Vec::new();
        let input = "a = \"x-${HOST}\"\nb = ${FLAG:false} # ${C}\nc = $$";
        let s = substitute(input, Mode::Placeholder("__p_"), &mut ph).unwrap();
        assert_eq!(
            s.text.as_str(),
            "a = \"x-${HOST}\"\nb = \"__p_0__\" # ${C}\nc = \"__p_1__\""
        );
        assert_eq!(ph, vec!["${FLAG:false}".to_owned(), "$$".to_owned()]);
    }
}
