//! The node agent's configuration (`~/.manta/nodes/NAME.toml`): schema, defaults compatible
//! with the published node, and validation with the published texts and hints.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::{ConfigError, Problem, Severity};
use crate::load::{self, LoadOptions, Loaded};

/// Dotted path of the node token, declared secret to the loader.
pub const SECURED_TOKEN_KEY: &str = "identity.secured_token";

/// Published text for a missing token.
pub const MSG_TOKEN_REQUIRED: &str = "secured_token is required";
/// Published text for a malformed or expired token.
pub const MSG_TOKEN_INVALID: &str = "Invalid or expired JWT token";

/// An alias longer than this is accepted with a warning (the seed's "< 50 characters").
pub const ALIAS_WARN_LEN: usize = 50;

/// The whole node configuration file.
///
/// Sections the agent uses are typed; the other sections of the published schema are
/// accepted as tables (so published files load) and kept for compatibility only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `[identity]`: token, alias, random ID.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// `[network]`: where the manager is.
    #[serde(default)]
    pub network: NetworkConfig,
    /// `[security]`: TLS and token renewal.
    #[serde(default)]
    pub security: SecurityConfig,
    /// `[logging]`.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// `[metadata]`.
    #[serde(default)]
    pub metadata: MetadataConfig,
    /// `[mqtt]` of the published schema, accepted and not used.
    #[serde(default)]
    pub mqtt: Option<toml::Table>,
    /// `[containers]` of the published schema, accepted and not used.
    #[serde(default)]
    pub containers: Option<toml::Table>,
    /// `[execution]` of the published schema, accepted and not used.
    #[serde(default)]
    pub execution: Option<toml::Table>,
    /// `[datasets]` of the published schema, accepted and not used.
    #[serde(default)]
    pub datasets: Option<toml::Table>,
    /// `[tasks]` of the published schema, accepted and not used.
    #[serde(default)]
    pub tasks: Option<toml::Table>,
    /// `[resources]` of the published schema, accepted and not used.
    #[serde(default)]
    pub resources: Option<toml::Table>,
    /// `[wireguard]` of the published schema, accepted and not used.
    #[serde(default)]
    pub wireguard: Option<toml::Table>,
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The node's JWT. Required; missing or empty is reported by [`NodeConfig::validate`]
    /// with the published text rather than as a parse error.
    #[serde(default)]
    pub secured_token: Option<SecretString>,
    /// Human-friendly name: letters, digits, `-` and `_`.
    #[serde(default)]
    pub alias: Option<String>,
    /// Generate a new random node ID at each start (default false).
    #[serde(default)]
    pub random_id: bool,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Manager host name or address (default `localhost`).
    pub manager_host: String,
    /// Manager port (default 50051).
    pub manager_port: u16,
    /// Published key, kept for compatibility (default `0.0.0.0`).
    pub light_service_host: String,
    /// Published key, kept for compatibility (default: automatic).
    pub light_service_port: Option<u16>,
    /// Published key (WireGuard `IP:port`), kept for compatibility.
    pub endpoint: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            manager_host: "localhost".to_owned(),
            manager_port: 50051,
            light_service_host: "0.0.0.0".to_owned(),
            light_service_port: None,
            endpoint: None,
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Connect to the manager over TLS (default false, as published).
    pub use_tls: bool,
    /// Folder with `ca.crt`, `client.crt`, `client.key` (default `~/.manta/certs`; a leading
    /// `~` is expanded by [`NodeConfig::cert_folder`]).
    pub cert_folder: String,
    /// Verify the manager's certificate (default true).
    pub verify_ssl: bool,
    /// Published key, kept for compatibility (default 3600 seconds).
    pub token_refresh_interval: u64,
    /// Renew the node token this many seconds before it expires (default 300).
    pub jwt_refresh_buffer_seconds: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            use_tls: false,
            cert_folder: "~/.manta/certs".to_owned(),
            verify_ssl: true,
            token_refresh_interval: 3600,
            jwt_refresh_buffer_seconds: 300,
        }
    }
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `TRACE`, `DEBUG`, `INFO` (default), `WARNING`/`WARN`, `ERROR` or `CRITICAL`.
    pub level: String,
    /// Log file name (default `manta_node.log`).
    pub filename: String,
    /// Write a log file (default true).
    pub log_to_file: bool,
    /// Log to the console (default false).
    pub log_to_console: bool,
    /// Published key, ignored by the published node too (default true).
    pub debug_mode: bool,
    /// Rotate after this size: bytes, or a number with a `K`, `M` or `G` suffix (default
    /// `100M`). See [`LoggingConfig::max_file_size_bytes`].
    pub max_file_size: String,
    /// Rotated files to keep (default 5).
    pub backup_count: u32,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "INFO".to_owned(),
            filename: "manta_node.log".to_owned(),
            log_to_file: true,
            log_to_console: false,
            debug_mode: true,
            max_file_size: "100M".to_owned(),
            backup_count: 5,
        }
    }
}

impl LoggingConfig {
    /// `max_file_size` in bytes, or `None` when it is not a number with an optional
    /// `K`/`M`/`G` suffix.
    pub fn max_file_size_bytes(&self) -> Option<u64> {
        let s = self.max_file_size.trim();
        let (digits, mult) = match s.chars().last()?.to_ascii_uppercase() {
            'K' => (&s[..s.len() - 1], 1u64 << 10),
            'M' => (&s[..s.len() - 1], 1 << 20),
            'G' => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        digits.trim().parse::<u64>().ok()?.checked_mul(mult)
    }
}

/// `[metadata]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// Configuration name (default `default`).
    pub name: String,
    /// Creation time, ISO 8601, written by `config init`.
    pub created_at: Option<String>,
    /// Schema version (default `1.0.0`).
    pub version: String,
    /// Free text.
    pub description: String,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            created_at: None,
            version: "1.0.0".to_owned(),
            description: String::new(),
        }
    }
}

/// The loader options for node configurations (the token is a secret key).
pub fn node_load_options() -> LoadOptions {
    LoadOptions::new()
        .secret_key(SECURED_TOKEN_KEY)
        .missing_file_hint("create it with `manta_node config init`")
}

impl NodeConfig {
    /// Loads a node configuration file. Does not validate: call [`NodeConfig::validate`].
    pub fn load(path: &Path, env: &Env) -> Result<Loaded<NodeConfig>, ConfigError> {
        load::load_file(path, env, &node_load_options())
    }

    /// Like [`NodeConfig::load`] with explicit options (e.g. to allow insecure permissions;
    /// keep the secret key from [`node_load_options`]).
    pub fn load_with(
        path: &Path,
        env: &Env,
        options: &LoadOptions,
    ) -> Result<Loaded<NodeConfig>, ConfigError> {
        load::load_file(path, env, options)
    }

    /// Parses a node configuration from text (no file, no permission check).
    pub fn from_toml(text: &str, env: &Env) -> Result<NodeConfig, ConfigError> {
        load::load_str(text, env, &node_load_options()).map(|l| l.value)
    }

    /// Checks the configuration as of `now`; returns every problem found, warnings
    /// included. See [`ValidationReport::into_result`].
    pub fn validate(&self, now: SystemTime) -> ValidationReport {
        let mut problems = Vec::new();
        validate_token(self.identity.secured_token.as_ref(), now, &mut problems);
        if let Some(alias) = &self.identity.alias {
            validate_alias(alias, &mut problems);
        }
        if self.network.manager_host.trim().is_empty() {
            problems.push(error(
                "network.manager_host",
                "manager_host is empty",
                None,
                &["Set network.manager_host to the manager's host name or address"],
            ));
        }
        if self.network.manager_port == 0 {
            problems.push(error(
                "network.manager_port",
                "manager_port must be between 1 and 65535",
                None,
                &["Set network.manager_port to the manager's port (default 50051)"],
            ));
        }
        if self.security.cert_folder.trim().is_empty() && self.security.use_tls {
            problems.push(error(
                "security.cert_folder",
                "cert_folder is required when use_tls is true",
                None,
                &["Set security.cert_folder to the folder holding ca.crt, client.crt and client.key"],
            ));
        }
        let level = self.logging.level.to_ascii_uppercase();
        if ![
            "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL",
        ]
        .contains(&level.as_str())
        {
            problems.push(error(
                "logging.level",
                "unknown log level",
                None,
                &["Use one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL"],
            ));
        }
        if self.logging.max_file_size_bytes().is_none() {
            problems.push(error(
                "logging.max_file_size",
                "max_file_size is not a size",
                None,
                &["Write a number of bytes, optionally with K, M or G (e.g. \"100M\")"],
            ));
        }
        ValidationReport { problems }
    }

    /// `security.cert_folder` with a leading `~` expanded to the home directory from `env`.
    pub fn cert_folder(&self, env: &Env) -> PathBuf {
        expand_tilde(&self.security.cert_folder, env)
    }

    /// The node token's `exp` claim, read without verifying the signature.
    pub fn token_expiry(&self) -> Option<SystemTime> {
        let token = self.identity.secured_token.as_ref()?;
        jwt_expiry(token.expose_secret()).ok().flatten()
    }
}

/// Expands a leading `~` or `~/` with `HOME` from `env`; other paths are returned as is.
pub(crate) fn expand_tilde(path: &str, env: &Env) -> PathBuf {
    if (path == "~" || path.starts_with("~/"))
        && let Some(home) = env.get_non_empty("HOME")
    {
        return Path::new(home.as_str()).join(path[1..].trim_start_matches('/'));
    }
    PathBuf::from(path)
}

/// The outcome of [`NodeConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationReport {
    /// Every problem, errors and warnings, in file order of the sections.
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    /// Whether any problem has severity [`Severity::Error`].
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    /// `Ok` with the warnings when there is no error, else [`ConfigError::Validation`] with
    /// every problem.
    pub fn into_result(self) -> Result<Vec<Problem>, ConfigError> {
        if self.has_errors() {
            Err(ConfigError::Validation {
                problems: self.problems,
            })
        } else {
            Ok(self.problems)
        }
    }
}

fn problem(
    severity: Severity,
    key: &str,
    message: &str,
    detail: Option<String>,
    hints: &[&str],
) -> Problem {
    Problem {
        severity,
        key: key.to_owned(),
        message: message.to_owned(),
        detail,
        hints: hints.iter().map(|h| (*h).to_owned()).collect(),
    }
}

fn error(key: &str, message: &str, detail: Option<String>, hints: &[&str]) -> Problem {
    problem(Severity::Error, key, message, detail, hints)
}

/// The seed's "Solutions" for a missing token.
const HINTS_TOKEN_REQUIRED: &[&str] = &[
    "Set secured_token in configuration",
    "Export environment variable (e.g. secured_token = \"${MANTA_NODE_TOKEN}\")",
    "Run manta_node config init to set token",
];

/// The seed's "Solutions" for an invalid token.
const HINTS_TOKEN_INVALID: &[&str] = &[
    "Check token hasn't expired",
    "Verify token format (should start with \"eyJ\")",
    "Ensure no extra whitespace",
    "Request new token from admin",
];

fn validate_token(token: Option<&SecretString>, now: SystemTime, problems: &mut Vec<Problem>) {
    let t = token.map(|t| t.expose_secret()).unwrap_or("");
    // The published node treats `<...>` as the template's placeholder.
    if t.is_empty() || t.starts_with('<') {
        problems.push(error(
            SECURED_TOKEN_KEY,
            MSG_TOKEN_REQUIRED,
            None,
            HINTS_TOKEN_REQUIRED,
        ));
        return;
    }
    let detail = match jwt_expiry(t) {
        Err(reason) => Some(reason.to_owned()),
        Ok(Some(exp)) if exp <= now => Some(format!("token expired at {}", iso8601(exp))),
        Ok(_) => None,
    };
    if let Some(detail) = detail {
        problems.push(error(
            SECURED_TOKEN_KEY,
            MSG_TOKEN_INVALID,
            Some(detail),
            HINTS_TOKEN_INVALID,
        ));
    }
}

/// Checks the shape of a JWT and reads its `exp` claim without verifying the signature
/// (verification belongs to `manta-auth`, which this crate may not depend on). The error
/// says what is wrong, never the token.
pub fn jwt_expiry(token: &str) -> Result<Option<SystemTime>, &'static str> {
    if token.chars().any(char::is_whitespace) {
        return Err("the token contains whitespace");
    }
    if !token.starts_with("eyJ") {
        return Err("the token does not start with \"eyJ\"");
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three parts separated by dots");
    };
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| "the payload is not base64url")?,
    );
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<serde_json::Number>,
    }
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|_| "the payload is not a JSON object")?;
    let Some(exp) = claims.exp else {
        return Ok(None);
    };
    let secs = exp
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or("the exp claim is not a time")?;
    // Bounded before any conversion: `UNIX_EPOCH + 1e19 s` overflows `SystemTime` and
    // panics. The bound is manta-auth's, so both crates refuse the same tokens.
    if secs > MAX_EXP_SECS as f64 {
        return Err("the exp claim is out of range: after the year 9999");
    }
    // In range, finite and non-negative (checked above), so neither step can panic.
    Ok(Some(UNIX_EPOCH + std::time::Duration::from_secs_f64(secs)))
}

/// The largest `exp` read from a token, 9999-12-31T23:59:59Z: manta-auth's `MAX_TIME_CLAIM`
/// (this crate may not depend on manta-auth, so the value is repeated).
const MAX_EXP_SECS: u64 = 253_402_300_799;

fn validate_alias(alias: &str, problems: &mut Vec<Problem>) {
    let key = "identity.alias";
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(error(
            key,
            "Invalid alias format",
            Some(format!(
                "characters other than letters, numbers, hyphens and underscores: {}",
                bad_chars(alias)
            )),
            &[
                "Use letters, numbers, hyphens and underscores only (e.g. gpu-worker-1)",
                "Remove the alias to have one generated",
            ],
        ));
    } else if alias.chars().count() > ALIAS_WARN_LEN {
        problems.push(problem(
            Severity::Warning,
            key,
            "alias is longer than 50 characters",
            Some(format!("{} characters", alias.chars().count())),
            &["Keep names reasonably short (< 50 characters)"],
        ));
    }
}

/// The distinct invalid characters of an alias, quoted (the alias itself is not echoed:
/// it may have been substituted from a variable that holds something private).
fn bad_chars(alias: &str) -> String {
    if alias.is_empty() {
        return "the alias is empty".to_owned();
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut seen: Vec<char> = Vec::new();
    for c in alias.chars().filter(|c| !valid(*c)) {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen.iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// An unsigned JWT with the given `exp` (signature part is a dummy).
    pub(crate) fn jwt(exp: Option<u64>) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let payload = match exp {
            Some(e) => format!("{{\"sub\":\"node-abc123\",\"exp\":{e}}}"),
            None => "{\"sub\":\"node-abc123\"}".to_owned(),
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"),
            b64(&payload)
        )
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn validate(text: &str, env: &Env) -> ValidationReport {
        NodeConfig::from_toml(text, env).unwrap().validate(now())
    }

    #[test]
    fn seed_example_with_env_loads_typed_values() {
        let token = jwt(Some(1_900_000_000));
        let env = Env::from_pairs([
            ("MANTA_NODE_TOKEN", token.as_str()),
            ("MANTA_NODE_ALIAS", "prod-gpu-1"),
            ("MANTA_RANDOM_ID", "true"),
        ]);
        let cfg = NodeConfig::from_toml(
            "[identity]\nsecured_token = \"${MANTA_NODE_TOKEN}\"\nalias = \"${MANTA_NODE_ALIAS}\"\nrandom_id = ${MANTA_RANDOM_ID}\n[network]\nmanager_port = ${PORT:50061}\n",
            &env,
        )
        .unwrap();
        assert_eq!(
            cfg.identity.secured_token.as_ref().unwrap().expose_secret(),
            token
        );
        assert_eq!(cfg.identity.alias.as_deref(), Some("prod-gpu-1"));
        assert!(cfg.identity.random_id);
        assert_eq!(cfg.network.manager_port, 50061);
        assert_eq!(cfg.network.manager_host, "localhost");
        assert_eq!(cfg.security.jwt_refresh_buffer_seconds, 300);
        assert_eq!(
            cfg.token_expiry(),
            Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        );
        assert!(!cfg.validate(now()).has_errors());
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains(&token),
            "Debug must not print the token: {debug}"
        );
    }

    #[test]
    fn missing_token_reports_seed_text_and_hints() {
        let env = Env::from_pairs([("EMPTY", "")]);
        for text in [
            "[identity]\nalias = \"a\"\n",
            "[identity]\nsecured_token = \"${EMPTY}\"\n",
            "[identity]\nsecured_token = \"<YOUR_JWT_TOKEN_HERE>\"\n",
            "",
        ] {
            let report = validate(text, &env);
            let p = &report.problems[0];
            assert_eq!(p.message, MSG_TOKEN_REQUIRED, "{text}");
            assert!(p.hints.iter().any(|h| h.contains("manta_node config init")));
            let err = report.into_result().unwrap_err().to_string();
            assert!(
                err.contains("secured_token is required")
                    && err.contains("Export environment variable"),
                "{err}"
            );
        }
    }

    #[test]
    fn invalid_tokens_report_reason_without_the_token() {
        let expired = jwt(Some(1_700_000_000));
        let cases = [
            (expired.clone(), "expired at 2023-11-14T22:13:20Z"),
            (format!(" {}", jwt(None)), "whitespace"),
            (format!("{}\n", jwt(None)), "whitespace"),
            ("abc.def.ghi".to_owned(), "start with"),
            ("eyJhbGciOiJIUzI1NiJ9.e30".to_owned(), "three parts"),
            ("eyJhbGciOiJIUzI1NiJ9.!!!.sig".to_owned(), "base64"),
            ("eyJhbGciOiJIUzI1NiJ9.bm90LWpzb24.sig".to_owned(), "JSON"),
        ];
        for (token, reason) in cases {
            let env = Env::from_pairs([("T", token.as_str())]);
            let report = validate("[identity]\nsecured_token = \"${T}\"\n", &env);
            assert_eq!(report.problems.len(), 1, "{token}");
            let p = &report.problems[0];
            assert_eq!(p.message, MSG_TOKEN_INVALID);
            assert!(
                p.detail.as_deref().unwrap().contains(reason),
                "{token}: {p}"
            );
            assert_eq!(p.hints.len(), 4);
            let text = report.into_result().unwrap_err().to_string();
            assert!(!text.contains(token.trim()), "token leaked: {text}");
        }
        // A token without exp is accepted: there is nothing to expire.
        let env = Env::from_pairs([("T", jwt(None))]);
        assert!(!validate("[identity]\nsecured_token = \"${T}\"\n", &env).has_errors());
    }

    #[test]
    fn extreme_exp_values_are_refused_with_a_reason_not_a_panic() {
        let out_of_range = "out of range: after the year 9999";
        for (exp, want) in [
            ("1e19", Err(out_of_range)),
            ("10000000000000000000", Err(out_of_range)),
            ("18446744073709551615", Err(out_of_range)),
            ("18446744073709551616", Err(out_of_range)),
            ("9223372036854775808", Err(out_of_range)),
            ("1.5e308", Err(out_of_range)),
            ("253402300800", Err(out_of_range)),
            ("-1", Err("not a time")),
            ("-1.5e308", Err("not a time")),
            ("253402300799", Ok(Some(253_402_300_799))),
            ("0", Ok(Some(0))),
            ("1900000000.9", Ok(Some(1_900_000_000))),
        ] {
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let token = format!("eyJ.{}.sig", b64(&format!("{{\"exp\":{exp}}}")));
            let got = jwt_expiry(&token)
                .map(|t| t.map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs()));
            match (got, want) {
                (Err(e), Err(w)) => assert!(e.contains(w), "{exp}: {e}"),
                (got, want) => assert_eq!(got, want.map_err(|_| ""), "{exp}"),
            }
        }
        // Through validation the reason reaches the user as the problem's detail.
        let env = Env::from_pairs([("T", "eyJ.eyJleHAiOjFlMTl9.sig")]);
        let report = validate("[identity]\nsecured_token = \"${T}\"\n", &env);
        let p = &report.problems[0];
        assert_eq!(p.message, MSG_TOKEN_INVALID);
        assert_eq!(
            p.detail.as_deref(),
            Some("the exp claim is out of range: after the year 9999")
        );
    }

    #[test]
    fn alias_rules() {
        let env = Env::from_pairs([("T", jwt(None))]);
        let check = |alias: &str| {
            validate(
                &format!("[identity]\nsecured_token = \"${{T}}\"\nalias = \"{alias}\"\n"),
                &env,
            )
        };
        assert!(check("gpu-worker_1").problems.is_empty());
        let bad = check("10.0.1.5 gpu");
        assert_eq!(bad.problems[0].message, "Invalid alias format");
        let detail = bad.problems[0].detail.as_deref().unwrap();
        assert!(
            detail.ends_with("'.', ' '") && !detail.contains("10.0"),
            "{detail}"
        );
        assert!(bad.has_errors());
        let long = check(&"a".repeat(51));
        assert!(!long.has_errors());
        assert_eq!(long.warnings().count(), 1);
        assert!(check(&"a".repeat(50)).problems.is_empty());
    }

    #[test]
    fn random_id_must_be_a_boolean() {
        let env = Env::from_pairs([("R", "yes"), ("T", jwt(None).as_str())]);
        let err = NodeConfig::from_toml(
            "[identity]\nsecured_token = \"${T}\"\nrandom_id = ${R}\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("identity.random_id") && err.contains("true or false"),
            "{err}"
        );
        let err = NodeConfig::from_toml("[identity]\nrandom_id = \"false\"\n", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2:13") && err.contains("true or false"),
            "{err}"
        );
    }

    #[test]
    fn other_checks_and_published_sections() {
        let env = Env::from_pairs([("T", jwt(None)), ("HOME", "/home/u".to_owned())]);
        let text = "[identity]\nsecured_token = \"${T}\"\n[network]\nmanager_port = 0\n[logging]\nlevel = \"LOUD\"\nmax_file_size = \"big\"\n[mqtt]\nping_interval = 1\n[tasks]\nmax_concurrent = 2\n";
        let cfg = NodeConfig::from_toml(text, &env).unwrap();
        let keys: Vec<_> = cfg
            .validate(now())
            .problems
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "network.manager_port",
                "logging.level",
                "logging.max_file_size"
            ]
        );
        assert_eq!(cfg.cert_folder(&env), PathBuf::from("/home/u/.manta/certs"));
        assert_eq!(
            LoggingConfig::default().max_file_size_bytes(),
            Some(100 << 20)
        );
        let err = NodeConfig::from_toml("[identiy]\n", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `identity`?"), "{err}");
    }

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "2000-02-29T01:01:01Z"
        );
    }
}
