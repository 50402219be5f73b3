//! The crate's single error type, with source locations and "what to do next" hints.

use std::fmt;
use std::path::PathBuf;

/// Where in a configuration file a problem was found.
///
/// Lines and columns are 1-based and refer to the file as written (before substitution), so
/// an editor jumps to the right place even when `${VAR}` references changed the text length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file, or `None` when the text did not come from a file.
    pub path: Option<PathBuf>,
    /// 1-based line number, or 0 when unknown.
    pub line: usize,
    /// 1-based column (in characters), or 0 when unknown.
    pub column: usize,
    /// Dotted key path such as `identity.secured_token`, when known.
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}", path.display())?,
            None => f.write_str("<config>")?,
        }
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(key) = &self.key
            && !key.is_empty()
        {
            write!(f, " (key `{key}`)")?;
        }
        Ok(())
    }
}

/// How serious a validation [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// The configuration cannot be used as is.
    Error,
    /// The configuration works but something deserves attention.
    Warning,
}

/// One finding of a validation pass: a message plus the seed's "Solutions" hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Whether this blocks the configuration from being used.
    pub severity: Severity,
    /// Dotted key path of the offending setting, e.g. `identity.alias`.
    pub key: String,
    /// The headline, using the published texts (e.g. `Invalid or expired JWT token`).
    pub message: String,
    /// What exactly was wrong, never containing a secret value.
    pub detail: Option<String>,
    /// What the user can do about it, one suggestion per entry.
    pub hints: Vec<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.key, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        for hint in &self.hints {
            write!(f, "\n  -> {hint}")?;
        }
        Ok(())
    }
}

/// Renders a list of problems, one per paragraph.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Renders hints after a message, one per line.
struct Hints<'a>(&'a [String]);

impl fmt::Display for Hints<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for hint in self.0 {
            write!(f, "\n  -> {hint}")?;
        }
        Ok(())
    }
}

/// What went wrong in a `${...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubstitutionErrorKind {
    /// `${VAR}` names a variable that is not set and has no default.
    Unset {
        /// The variable's name.
        variable: String,
    },
    /// `${VAR:?message}` or `${VAR?message}` with the variable unset (or empty for `:?`).
    Required {
        /// The variable's name.
        variable: String,
        /// The message written in the file.
        message: String,
    },
    /// `${}`: no variable name.
    EmptyName,
    /// The name is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidName {
        /// What was written.
        name: String,
    },
    /// `${VAR` with no closing brace on the same line.
    Unterminated,
}

impl fmt::Display for SubstitutionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset { variable } => write!(
                f,
                "environment variable {variable} is not set; export it, or write a default as ${{{variable}:default}}"
            ),
            Self::Required { variable, message } => {
                write!(f, "environment variable {variable} is required: {message}")
            }
            Self::EmptyName => f.write_str(
                "empty reference `${}`; write ${NAME} with a variable name, or $$ for a literal $",
            ),
            Self::InvalidName { name } => write!(
                f,
                "invalid variable name `{name}`; names use letters, digits and _ and do not start with a digit (write $$ for a literal $)"
            ),
            Self::Unterminated => f.write_str(
                "unterminated reference: `${` without `}` on the same line; close it, or write $$ for a literal $",
            ),
        }
    }
}

/// The error type of every fallible function in this crate.
///
/// Messages never contain the value of a secret (tokens, passwords) nor of any environment
/// variable; they name files, lines, keys and variables instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not exist. Loading never creates files.
    #[error("{} does not exist; {hint}", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// What to run or check next.
        hint: String,
    },
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file (or creating its directory) failed.
    #[error("cannot write {}: {source}; check that the directory exists and is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that holds a secret is readable by group or others.
    #[error(
        "{} holds a secret but is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A `${...}` reference could not be substituted.
    #[error("{location}: {kind}")]
    Substitution {
        /// Where the reference is.
        location: Location,
        /// What was wrong with it.
        kind: SubstitutionErrorKind,
    },
    /// The text is not valid TOML (after substitution).
    #[error("{location}: invalid TOML: {message}{}", Hints(hints))]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The parser's description, without any value from the file.
        message: String,
        /// What to do next.
        hints: Vec<String>,
    },
    /// A key that the schema does not know.
    #[error("{location}: unknown key `{key}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_else(|| "; remove it or check its spelling".to_owned()))]
    UnknownKey {
        /// Where the key is.
        location: Location,
        /// The key as written.
        key: String,
        /// The closest known key, when one is close enough.
        suggestion: Option<String>,
    },
    /// A value of the wrong type or shape, or a missing required key.
    #[error("{location}: {message}{}", Hints(hints))]
    Invalid {
        /// Where the value is.
        location: Location,
        /// What is wrong; values of secret fields and substituted values are redacted.
        message: String,
        /// What to do next.
        hints: Vec<String>,
    },
    /// Validation found one or more problems of severity [`Severity::Error`].
    #[error("{}", Problems(problems))]
    Validation {
        /// Every problem found (errors and warnings).
        problems: Vec<Problem>,
    },
    /// A node configuration name with characters other than letters, digits, `-` and `_`.
    #[error(
        "invalid configuration name `{name}`; use letters, digits, - and _ only, or pass a path ending in .toml"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// Neither `MANTA_HOME` nor `HOME` is set.
    #[error("cannot find the home directory; set MANTA_HOME or HOME")]
    NoHome,
    /// A file that `config init` would create already exists.
    #[error("{} already exists; pass overwrite to replace it, or choose another name", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The requested client profile is not in the client configuration.
    #[error("profile `{name}` not found in {}{}", path.display(), match (suggestion, available.is_empty()) {
        (_, true) => format!("; add a [profiles.{name}] table"),
        (Some(s), false) => format!(" (profiles: {}); did you mean `{s}`?", available.join(", ")),
        (None, false) => format!("; use one of its profiles: {}", available.join(", ")),
    })]
    ProfileNotFound {
        /// The name asked for (argument or `MANTA_ENV`).
        name: String,
        /// The client configuration file.
        path: PathBuf,
        /// Profile names that exist.
        available: Vec<String>,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// No step of the token lookup chain produced a token.
    #[error("no API token found (looked at: {}); export {}, or write [auth] token to the credentials file", tried.join(", "), variable)]
    NoToken {
        /// Each source that was consulted, in order.
        tried: Vec<String>,
        /// The environment variable the user should export.
        variable: String,
    },
    /// A token was passed explicitly but is empty.
    #[error(
        "the token given explicitly is empty; pass a JWT or leave the option out to use the lookup chain"
    )]
    EmptyExplicitToken,
    /// The OS keyring failed (not "no entry", which just moves the chain on).
    #[error("keyring error: {message}; check that the keyring is available or remove the entry")]
    Keyring {
        /// The backend's description (never a secret).
        message: String,
    },
    /// An edit named a key path that cannot be set.
    #[error("cannot set `{key}`: {reason}")]
    Edit {
        /// The dotted key path.
        key: String,
        /// Why (e.g. a parent is not a table).
        reason: String,
    },
}
