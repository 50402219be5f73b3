//! Admin commands for platform resources: `cluster create|list`, `node-token issue|revoke`
//! and `node list|show|remove`. They work on the store directly, like the user commands.

use std::io::Write;
use std::time::Duration;

use clap::Subcommand;
use manta_proto::common::informations::ClusterStatus;
use secrecy::ExposeSecret;

use super::{Context, fmt_time, io_err, parse_duration, terminal_safe};
use crate::error::{Error, Result};
use crate::platform::Viewer;
use crate::registry::{NodeView, Registry};
use crate::store::ClusterRecord;

/// `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Creates a cluster and prints its id.
    Create {
        /// The cluster's name.
        name: String,
        /// The owning user (name or id); without it only administrators see the cluster.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Lists clusters.
    List {
        /// Prints JSON lines.
        #[arg(long)]
        json: bool,
    },
}

/// `node-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeTokenCommand {
    /// Issues a bootstrap token for nodes to join a cluster and prints only the token.
    Issue {
        /// The cluster: its id, or the name of exactly one cluster.
        #[arg(long)]
        cluster: String,
        /// Lifetime such as `7d`, `12h`, `15m` or seconds (default 24h).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Revokes every bootstrap token of a cluster issued so far (registered nodes keep
    /// their own tokens).
    Revoke {
        /// The cluster: its id, or the name of exactly one cluster.
        #[arg(long)]
        cluster: String,
    },
}

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Lists registered nodes with liveness.
    List {
        /// Only nodes of this cluster (its id, or the name of exactly one cluster).
        #[arg(long)]
        cluster: Option<String>,
        /// Prints JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Shows one node.
    Show {
        /// The node id.
        id: String,
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes a node; its tokens stop working at once.
    Remove {
        /// The node id.
        id: String,
    },
}

fn cluster_json(c: &ClusterRecord) -> serde_json::Value {
    serde_json::json!({
        "id": c.id, "name": c.name, "owner_id": c.owner_id, "status": status_name(c.status),
        "created_at": c.created_at, "last_start": c.last_start, "last_stop": c.last_stop,
    })
}

fn status_name(status: i32) -> &'static str {
    match ClusterStatus::try_from(status) {
        Ok(ClusterStatus::Running) => "running",
        Ok(ClusterStatus::Stopped) => "stopped",
        _ => "created",
    }
}

fn node_json(n: &NodeView) -> serde_json::Value {
    let overview = Registry::overview(&n.record);
    let platform = overview.platform_info.unwrap_or_default();
    serde_json::json!({
        "id": n.record.id,
        "cluster_id": n.record.cluster_id,
        "alias": n.record.alias,
        "fixed_alias": n.record.fixed_alias,
        "status": if n.online { "online" } else { "offline" },
        "last_seen": n.last_seen,
        "issued_version": n.record.issued_version,
        "token_expires_at": n.record.token_expires_at,
        "registered_at": n.record.registered_at,
        "hostname": platform.hostname,
        "system": platform.system,
        "node_package_version": overview.node_package_version,
    })
}

/// The cluster `given` names: the one with that id or, when no cluster has it as its id,
/// the only cluster with that name. Names are not unique, so a name that several clusters
/// share is refused with their ids.
fn cluster_of(ctx: &Context, given: &str) -> Result<ClusterRecord> {
    let platform = ctx.core.platform();
    let viewer = Viewer::operator();
    match platform.cluster(&viewer, given) {
        Err(Error::NotFound { .. }) => {}
        found => return found,
    }
    let given = given.trim();
    let mut named: Vec<ClusterRecord> = platform
        .clusters(&viewer)?
        .into_iter()
        .filter(|c| c.name == given)
        .collect();
    match named.len() {
        0 => Err(Error::UnknownCluster(given.to_owned())),
        1 => Ok(named.remove(0)),
        _ => Err(Error::AmbiguousCluster {
            name: given.to_owned(),
            ids: named.into_iter().map(|c| c.id).collect(),
        }),
    }
}

pub(super) fn cluster_command(
    ctx: &Context,
    cmd: ClusterCommand,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        ClusterCommand::Create { name, owner } => {
            let owner_id = match owner {
                Some(o) => ctx.core.find_user(&o)?.id,
                None => String::new(),
            };
            let c = ctx.core.platform().create_cluster(&owner_id, &name)?;
            writeln!(out, "{}", c.id).map_err(io_err)
        }
        ClusterCommand::List { json } => {
            for c in ctx.core.platform().clusters(&Viewer::operator())? {
                if json {
                    writeln!(out, "{}", cluster_json(&c)).map_err(io_err)?;
                } else {
                    writeln!(
                        out,
                        "{}  {:<8} {:<24} {}",
                        terminal_safe(&c.id),
                        status_name(c.status),
                        terminal_safe(&c.name),
                        fmt_time(c.created_at)
                    )
                    .map_err(io_err)?;
                }
            }
            Ok(())
        }
    }
}

pub(super) fn node_token_command(
    ctx: &Context,
    cmd: NodeTokenCommand,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        NodeTokenCommand::Issue { cluster, ttl } => {
            let c = cluster_of(ctx, &cluster)?;
            let token = ctx.core.platform().bootstrap_token(&c, ttl)?;
            writeln!(out, "{}", token.expose_secret()).map_err(io_err)
        }
        NodeTokenCommand::Revoke { cluster } => {
            let cluster = cluster_of(ctx, &cluster)?.id;
            ctx.core
                .platform()
                .revoke_bootstrap(&Viewer::operator(), &cluster)?;
            writeln!(
                out,
                "revoked every bootstrap token of cluster {}; registered nodes keep \
                 working, new nodes need a token from `manta-manager node-token issue`",
                terminal_safe(&cluster)
            )
            .map_err(io_err)
        }
    }
}

pub(super) fn node_command(ctx: &Context, cmd: NodeCommand, out: &mut dyn Write) -> Result<()> {
    let registry = ctx.core.platform().registry();
    match cmd {
        NodeCommand::List { cluster, json } => {
            let cluster = match &cluster {
                Some(c) => Some(cluster_of(ctx, c)?.id),
                None => None,
            };
            for n in registry.list(cluster.as_deref())? {
                if json {
                    writeln!(out, "{}", node_json(&n)).map_err(io_err)?;
                } else {
                    writeln!(
                        out,
                        "{}  {:<7} {:<24} cluster {}  last seen {}",
                        terminal_safe(&n.record.id),
                        if n.online { "online" } else { "offline" },
                        terminal_safe(n.record.alias.as_deref().unwrap_or("-")),
                        terminal_safe(&n.record.cluster_id),
                        n.last_seen.map_or_else(|| "never".to_owned(), fmt_time)
                    )
                    .map_err(io_err)?;
                }
            }
            Ok(())
        }
        NodeCommand::Show { id, json } => {
            let n = registry
                .get(None, id.trim())?
                .ok_or_else(|| Error::NotFound {
                    kind: "node",
                    id: id.clone(),
                    hint: "list nodes with `manta-manager node list`",
                })?;
            if json {
                return writeln!(out, "{:#}", node_json(&n)).map_err(io_err);
            }
            let v = node_json(&n);
            let obj = v.as_object().into_iter().flatten();
            for (k, v) in obj {
                // JSON escapes C0 controls but not DEL or the C1 range (the one-byte CSI).
                writeln!(out, "{k:<20} {}", terminal_safe(&v.to_string())).map_err(io_err)?;
            }
            let expires_in = n.record.token_expires_at - registry.now_secs();
            writeln!(out, "{:<20} {}s", "token_expires_in", expires_in).map_err(io_err)
        }
        NodeCommand::Remove { id } => {
            if !registry.remove(id.trim())? {
                return Err(Error::NotFound {
                    kind: "node",
                    id,
                    hint: "list nodes with `manta-manager node list`",
                });
            }
            writeln!(
                out,
                "removed node {}; its tokens no longer work",
                terminal_safe(&id)
            )
            .map_err(io_err)
        }
    }
}
