//! The `manta` command line: clap definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Manta command line: sign in, manage tokens, clusters and swarms.
#[derive(Debug, Parser)]
#[command(name = "manta", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Profile from ~/.manta/config.toml (default: MANTA_ENV, then default_profile)
    #[arg(long, global = true)]
    pub(crate) profile: Option<String>,
    /// Manager host (overrides the profile)
    #[arg(long, global = true)]
    pub(crate) host: Option<String>,
    /// Manager port (overrides the profile)
    #[arg(long, global = true)]
    pub(crate) port: Option<u16>,
    /// Folder with the manager's ca.crt (TLS), plus client.crt and client.key for mTLS (overrides the profile)
    #[arg(long, global = true)]
    pub(crate) cert_folder: Option<PathBuf>,
    /// Print data as JSON
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Per-call timeout in seconds
    #[arg(long, global = true, default_value_t = 45)]
    pub(crate) timeout: u64,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); MANTA_LOG takes a filter
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sign in and store the profile's credential (keyring when usable, else credentials.ini)
    Login(LoginArgs),
    /// End the session `manta login` stored for the profile and forget it (tokens from
    /// variables are never touched)
    Logout,
    /// Show the signed-in user, its scopes and where the token came from
    Whoami,
    /// Inspect, refresh and manage tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// List profiles or choose the default one
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Clusters
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Swarms
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Print shell completions
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Where `manta login` and `manta token refresh` store the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Store {
    /// The OS keyring (entry manta/api_token)
    Keyring,
    /// ~/.manta/credentials.ini, mode 0600
    File,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// User name (asked for when absent)
    #[arg(long, short)]
    pub(crate) username: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Where to store the credential (default: the keyring when it works in this process,
    /// else credentials.ini)
    #[arg(long, value_enum)]
    pub(crate) store: Option<Store>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Decode a token without verifying it: header, claims, times, time left (never the
    /// signature); exit 0 valid, 10 expired, 11 not yet valid, 2 malformed
    Inspect {
        /// `-` reads the token from standard input (default: the profile's token); a token
        /// itself is refused here, because command lines show in `ps` and shell history
        token: Option<String>,
    },
    /// Renew the current token now and store the new one where the old one came from
    Refresh,
    /// Create a named API token with some of your scopes; it is printed once
    Create {
        /// A name to recognise it by
        #[arg(long)]
        name: String,
        /// Scopes, comma or space separated (e.g. cluster:read,swarm:deploy)
        #[arg(long, required = true, num_args = 1.., value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime: seconds, or a number with s, m, h or d (default: the manager's)
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
    },
    /// List your API tokens (metadata only)
    List {
        /// Include revoked and expired tokens
        #[arg(long)]
        all: bool,
    },
    /// Revoke one of your API tokens by id
    Revoke {
        /// The token id (from `manta token list`)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// List the profiles in config.toml; `*` marks the one in use; shows which hold a
    /// credential and until when
    List,
    /// Make a profile the default
    Use {
        /// The profile name
        name: String,
    },
    /// Add a profile to config.toml (with the global --host, --port, --cert-folder)
    Add {
        /// The profile name (letters, digits, `-` and `_`)
        name: String,
        /// The environment variable holding this profile's token
        #[arg(long)]
        token_env: Option<String>,
    },
    /// Remove a profile from config.toml (log out of it first)
    Remove {
        /// The profile name
        name: String,
    },
    /// Show a profile's settings and its stored credential (default: the one in use)
    Show {
        /// The profile name
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// List clusters: id, status and name
    List,
    /// Show one cluster
    Get {
        /// The cluster id, or the name of exactly one cluster
        cluster: String,
    },
    /// Create a cluster
    Create {
        /// A name for it
        #[arg(long)]
        name: Option<String>,
    },
    /// Start a cluster
    Start {
        /// The cluster id, or the name of exactly one cluster
        cluster: String,
    },
    /// Stop a cluster
    Stop {
        /// The cluster id, or the name of exactly one cluster
        cluster: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SwarmCommand {
    /// Deploy a swarm described in a JSON file (see docs/cli.md)
    Deploy {
        /// The cluster to deploy to: its id, or the name of exactly one cluster
        #[arg(long)]
        cluster: String,
        /// The swarm file
        file: PathBuf,
    },
    /// Stop a swarm
    Stop {
        /// The swarm id
        id: String,
    },
    /// List swarm ids
    List,
    /// Show one swarm
    Get {
        /// The swarm id
        id: String,
    },
}

/// `90`, `90s`, `15m`, `12h`, `30d` → seconds.
pub(crate) fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 3600, 90m, 12h or 30d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in `{s}`; use s, m, h or d")),
    };
    if n == 0 {
        return Err("the lifetime must be positive".into());
    }
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_units_and_explains_mistakes() {
        let check = |input: &str, expected: Result<u64, &str>| {
            let got = parse_ttl(input);
            match expected {
                Ok(v) => assert_eq!(got, Ok(v), "{input}"),
                Err(part) => assert!(got.as_ref().unwrap_err().contains(part), "{input}: {got:?}"),
            }
        };
        check("90", Ok(90));
        check("15m", Ok(900));
        check("12h", Ok(43_200));
        check("30d", Ok(2_592_000));
        check("3w", Err("unknown unit"));
        check("abc", Err("not a duration"));
        check("0", Err("positive"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
