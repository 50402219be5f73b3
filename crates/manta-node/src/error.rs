//! The crate's single error type, its exit codes and the seed's "Solutions" for each error.

use std::path::PathBuf;

use manta_config::{ConfigError, MSG_TOKEN_INVALID, MSG_TOKEN_REQUIRED};

/// Exit code for configuration errors (`EX_CONFIG` from `sysexits.h`).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code when the manager cannot be reached (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when the manager refused the node's token or identity (`EX_NOPERM`).
pub const EXIT_NOPERM: u8 = 77;
/// Exit code for every other failure.
pub const EXIT_FAILURE: u8 = 1;

/// The seed's solutions for "Invalid or expired JWT token".
pub(crate) const SOLUTIONS_TOKEN_INVALID: &[&str] = &[
    "Check token hasn't expired",
    "Verify token format (should start with \"eyJ\")",
    "Ensure no extra whitespace",
    "Request new token from admin",
];

/// The seed's solutions for "secured_token is required".
pub(crate) const SOLUTIONS_TOKEN_REQUIRED: &[&str] = &[
    "Set secured_token in configuration",
    "Export environment variable (e.g. secured_token = \"${MANTA_NODE_TOKEN}\")",
    "Run manta_node config init to set token",
];

/// The seed's solutions for a duplicate alias.
pub(crate) const SOLUTIONS_DUPLICATE_ALIAS: &[&str] = &[
    "Choose unique alias",
    "Enable random_id",
    "Use hostname in alias",
    "Add timestamp or random suffix",
];

/// Everything that can stop a `manta_node` command or the agent.
///
/// Messages never contain a token. [`NodeError::headline`] gives the seed's text where the
/// seed has one ("Node with alias 'worker-1' already exists"), [`NodeError::solutions`] its
/// "Solutions" list, and [`NodeError::exit_code`] the process exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration could not be loaded or failed validation.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The configuration has no usable token (missing, empty or the template placeholder).
    #[error(
        "secured_token is required; set it in the configuration or export the variable it names"
    )]
    TokenRequired,
    /// The manager (or the local check) refused the token as malformed, expired or unknown.
    #[error("Invalid or expired JWT token: {detail}; request a new token from your admin")]
    InvalidToken {
        /// Why, as the manager or the local check put it (never the token).
        detail: String,
    },
    /// Another node with this alias is online (on the manager, or already running here).
    #[error("Node with alias '{alias}' already exists{}; choose a unique alias or enable random_id", running_here.map(|pid| format!(" (running here as pid {pid})")).unwrap_or_default())]
    DuplicateAlias {
        /// The alias.
        alias: String,
        /// The local process that holds it, when the conflict was found locally.
        running_here: Option<u32>,
    },
    /// An alias given on the command line or derived from the host name is not usable.
    #[error("invalid alias `{alias}`: use letters, digits, - and _ only (at most 64 characters)")]
    InvalidAlias {
        /// The alias as given.
        alias: String,
    },
    /// The TLS material named by `[security]` could not be used.
    #[error("{0}")]
    Tls(#[from] manta_tls::TlsError),
    /// The manager could not be reached.
    #[error(
        "cannot reach the manager at {endpoint}: {detail}; check that it is running and network.manager_host/manager_port"
    )]
    Unavailable {
        /// `host:port`.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// The manager refused the request for a reason other than the token.
    #[error(
        "the manager refused {operation}: {detail}; ask the operator to check the node's permissions"
    )]
    Refused {
        /// The RPC, e.g. `RegisterNode`.
        operation: &'static str,
        /// The manager's message.
        detail: String,
    },
    /// The port answers with the manager's user API, not the node API.
    #[error(
        "{endpoint} is the user API of a Manta manager, not the node API; set network.manager_port (or --manager) to the node API port"
    )]
    WrongService {
        /// `host:port`.
        endpoint: String,
    },
    /// The manager answered in a way the node cannot use.
    #[error(
        "the manager's answer to {operation} is unusable: {detail}; check that the manager version supports manta_node"
    )]
    BadResponse {
        /// The RPC.
        operation: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The node token expired and neither renewal nor the bootstrap token brought it back.
    #[error(
        "the node token expired and could not be renewed ({detail}); put a fresh bootstrap token in secured_token and send SIGHUP or restart"
    )]
    IdentityLost {
        /// What the last attempt said.
        detail: String,
    },
    /// The manager named an MQTT broker, and the node has no usable broker credentials or
    /// the broker refused them.
    #[error("the MQTT broker at {broker} cannot be used: {detail}")]
    Broker {
        /// `host:port` of the broker.
        broker: String,
        /// What is wrong (never the password).
        detail: String,
    },
    /// A state, lock or log file could not be read or written.
    #[error("cannot use {}: {source}; check that the directory exists and is writable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An identity state file is readable by group or others.
    #[error("{} holds a node token but is readable by group or others (mode {mode:04o}); run `chmod 600 {}`", path.display(), path.display())]
    InsecureState {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An identity state file is not valid.
    #[error("{} is not a valid node state file: {detail}; delete it to register again", path.display())]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the token).
        detail: String,
    },
    /// `manta_node stop` found no running agent to stop.
    #[error("no running node {}; see `manta_node status`", alias.as_ref().map(|a| format!("with alias '{a}'")).unwrap_or_else(|| "found".to_owned()))]
    NotRunning {
        /// The alias asked for.
        alias: Option<String>,
    },
    /// `manta_node stop` without an alias found several agents.
    #[error("several nodes are running ({}); name the one to stop", aliases.join(", "))]
    Ambiguous {
        /// Their aliases.
        aliases: Vec<String>,
    },
    /// A running agent did not exit after SIGTERM within the timeout.
    #[error(
        "node '{alias}' (pid {pid}) did not stop within {seconds} s; retry, or pass --force to kill it"
    )]
    StopTimeout {
        /// The alias.
        alias: String,
        /// Its process id.
        pid: u32,
        /// How long we waited.
        seconds: u64,
    },
    /// Signalling a process failed.
    #[error("cannot signal pid {pid}: {source}; check that you run as the same user as the node")]
    Signal {
        /// The process id.
        pid: u32,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command line problem.
    #[error("{0}")]
    Usage(String),

    /// Standard input ended before `config init` had an answer to a question.
    #[error(
        "standard input ended before an answer to \"{question}\"; answer every question, or give the values as flags (manta_node config init --help)"
    )]
    NoAnswer {
        /// The question left unanswered.
        question: String,
    },
}

impl NodeError {
    /// The process exit code for this error: 78 for configuration errors, 77 when the
    /// manager refused the token or identity, 69 when it cannot be reached, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::TokenRequired
            | Self::InvalidAlias { .. }
            | Self::Tls(_)
            | Self::InsecureState { .. }
            | Self::CorruptState { .. }
            | Self::Usage(_)
            | Self::WrongService { .. }
            | Self::Broker { .. } => EXIT_CONFIG,
            Self::InvalidToken { .. }
            | Self::DuplicateAlias { .. }
            | Self::Refused { .. }
            | Self::IdentityLost { .. } => EXIT_NOPERM,
            Self::Unavailable { .. } => EXIT_UNAVAILABLE,
            _ => EXIT_FAILURE,
        }
    }

    /// The first line the CLI prints after `Error: `: the seed's exact text for its three
    /// troubleshooting errors, the full message otherwise.
    pub fn headline(&self) -> String {
        match self {
            Self::TokenRequired => MSG_TOKEN_REQUIRED.to_owned(),
            Self::InvalidToken { .. } => MSG_TOKEN_INVALID.to_owned(),
            Self::DuplicateAlias { alias, .. } => {
                format!("Node with alias '{alias}' already exists")
            }
            other => other.to_string(),
        }
    }

    /// Extra detail printed under the headline, when the headline is the seed's short text.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::InvalidToken { detail } => Some(detail.clone()),
            Self::DuplicateAlias {
                running_here: Some(pid),
                ..
            } => Some(format!(
                "an agent with this alias is already running here (pid {pid})"
            )),
            _ => None,
        }
    }

    /// The seed's "Solutions" for this error (empty when the message says it all).
    pub fn solutions(&self) -> &'static [&'static str] {
        match self {
            Self::TokenRequired => SOLUTIONS_TOKEN_REQUIRED,
            Self::InvalidToken { .. } | Self::IdentityLost { .. } => SOLUTIONS_TOKEN_INVALID,
            Self::DuplicateAlias { .. } => SOLUTIONS_DUPLICATE_ALIAS,
            _ => &[],
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_errors_have_exact_headlines_and_solutions() {
        let dup = NodeError::DuplicateAlias {
            alias: "worker-1".into(),
            running_here: None,
        };
        assert_eq!(dup.headline(), "Node with alias 'worker-1' already exists");
        assert_eq!(dup.solutions()[1], "Enable random_id");
        assert_eq!(dup.exit_code(), EXIT_NOPERM);
        let invalid = NodeError::InvalidToken {
            detail: "expired token".into(),
        };
        assert_eq!(invalid.headline(), "Invalid or expired JWT token");
        assert!(
            invalid
                .solutions()
                .contains(&"Request new token from admin")
        );
        assert_eq!(
            NodeError::TokenRequired.headline(),
            "secured_token is required"
        );
        assert_eq!(NodeError::TokenRequired.exit_code(), EXIT_CONFIG);
        assert!(
            NodeError::TokenRequired
                .solutions()
                .iter()
                .any(|s| s.contains("manta_node config init"))
        );
        let local = NodeError::DuplicateAlias {
            alias: "w".into(),
            running_here: Some(42),
        };
        assert!(local.to_string().contains("pid 42"));
        assert!(local.detail().unwrap().contains("42"));
    }
}
