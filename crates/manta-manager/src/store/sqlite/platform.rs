//! The SQLite tables of platform records (migration 2) and their queries.

use manta_proto::common::informations::ClusterStatus;
use manta_proto::common::swarms::SwarmStatusEnum;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::error::Result;
use crate::store::platform::{ClusterRecord, ModuleRecord, NodeRecord, PlatformStore, SwarmRecord};

/// Migration 2: clusters, nodes, modules, swarms and swarm globals.
pub(super) const MIGRATION: &str = "
    CREATE TABLE clusters (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id TEXT NOT NULL DEFAULT '',
        users TEXT NOT NULL DEFAULT '',
        status INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_start INTEGER,
        last_stop INTEGER,
        bootstrap_not_before INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
        alias TEXT,
        fixed_alias INTEGER NOT NULL,
        requested_id TEXT,
        issued_version INTEGER NOT NULL,
        token_expires_at INTEGER NOT NULL,
        registered_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_seen INTEGER,
        overview BLOB NOT NULL
    );
    CREATE INDEX nodes_by_cluster ON nodes(cluster_id, registered_at);
    CREATE TABLE modules (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE swarms (
        id TEXT PRIMARY KEY,
        cluster_id TEXT NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        last_start INTEGER,
        last_stop INTEGER,
        max_iteration INTEGER,
        network_id TEXT,
        network_type INTEGER,
        graph BLOB NOT NULL,
        networks BLOB
    );
    CREATE TABLE swarm_globals (
        swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (swarm_id, tag)
    );
";

const CLUSTER_COLUMNS: &str = "id, name, owner_id, users, status, created_at, updated_at, \
     last_start, last_stop, bootstrap_not_before, bootstrap_generation";

fn cluster_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClusterRecord> {
    let users: String = row.get(3)?;
    Ok(ClusterRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        owner_id: row.get(2)?,
        users: super::split_words(&users),
        status: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        last_start: row.get(7)?,
        last_stop: row.get(8)?,
        bootstrap_not_before: row.get(9)?,
        bootstrap_generation: row.get(10)?,
    })
}

const NODE_COLUMNS: &str = "id, cluster_id, alias, fixed_alias, requested_id, issued_version, \
     token_expires_at, registered_at, updated_at, last_seen, overview";

fn node_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRecord> {
    let version: i64 = row.get(5)?;
    Ok(NodeRecord {
        id: row.get(0)?,
        cluster_id: row.get(1)?,
        alias: row.get(2)?,
        fixed_alias: row.get(3)?,
        requested_id: row.get(4)?,
        issued_version: u64::try_from(version).unwrap_or(0),
        token_expires_at: row.get(6)?,
        registered_at: row.get(7)?,
        updated_at: row.get(8)?,
        last_seen: row.get(9)?,
        overview: row.get(10)?,
    })
}

const SWARM_COLUMNS: &str = "id, cluster_id, owner_id, name, status, created_at, last_start, \
     last_stop, max_iteration, network_id, network_type, graph, networks";

fn swarm_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SwarmRecord> {
    Ok(SwarmRecord {
        id: row.get(0)?,
        cluster_id: row.get(1)?,
        owner_id: row.get(2)?,
        name: row.get(3)?,
        status: row.get(4)?,
        created_at: row.get(5)?,
        last_start: row.get(6)?,
        last_stop: row.get(7)?,
        max_iteration: row.get(8)?,
        network_id: row.get(9)?,
        network_type: row.get(10)?,
        graph: row.get(11)?,
        networks: row.get(12)?,
    })
}

/// The column a status change stamps: `last_start` when it starts the record, else `last_stop`.
fn stamped_column(started: bool) -> &'static str {
    if started { "last_start" } else { "last_stop" }
}

impl PlatformStore for SqliteStore {
    fn create_cluster(&self, c: &ClusterRecord) -> Result<()> {
        self.write(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO clusters ({CLUSTER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
                ),
                params![
                    c.id,
                    c.name,
                    c.owner_id,
                    super::join_words(&c.users),
                    c.status,
                    c.created_at,
                    c.updated_at,
                    c.last_start,
                    c.last_stop,
                    c.bootstrap_not_before,
                    c.bootstrap_generation
                ],
            )
            .map(|_| ())
        })
    }

    fn cluster(&self, id: &str) -> Result<Option<ClusterRecord>> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {CLUSTER_COLUMNS} FROM clusters WHERE id = ?1"),
                [id],
                cluster_from_row,
            )
            .optional()
        })
    }

    fn list_clusters(&self) -> Result<Vec<ClusterRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY created_at, id"
            ))?;
            stmt.query_map([], cluster_from_row)?.collect()
        })
    }

    fn set_cluster_status(&self, id: &str, status: i32, now: i64) -> Result<bool> {
        let column = stamped_column(status == ClusterStatus::Running as i32);
        self.write(|conn| {
            conn.execute(
                &format!(
                    "UPDATE clusters SET status = ?2, updated_at = ?3, {column} = ?3 WHERE id = ?1"
                ),
                params![id, status, now],
            )
            .map(|n| n > 0)
        })
    }

    fn delete_cluster(&self, id: &str) -> Result<bool> {
        self.write(|conn| {
            conn.execute("DELETE FROM clusters WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
    }

    fn revoke_bootstrap(&self, id: &str, now: i64) -> Result<bool> {
        self.write(|conn| {
            conn.execute(
                "UPDATE clusters SET bootstrap_generation = bootstrap_generation + 1, \
                 bootstrap_not_before = MAX(bootstrap_not_before, ?2) WHERE id = ?1",
                params![id, now],
            )
            .map(|n| n > 0)
        })
    }

    fn upsert_node(&self, n: &NodeRecord, replaces: &[String]) -> Result<()> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for old in replaces {
                tx.execute("DELETE FROM nodes WHERE id = ?1", [old])?;
            }
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO nodes ({NODE_COLUMNS}) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
                ),
                params![
                    n.id,
                    n.cluster_id,
                    n.alias,
                    n.fixed_alias,
                    n.requested_id,
                    i64::try_from(n.issued_version).unwrap_or(i64::MAX),
                    n.token_expires_at,
                    n.registered_at,
                    n.updated_at,
                    n.last_seen,
                    n.overview
                ],
            )?;
            tx.commit()
        })
    }

    fn node(&self, id: &str) -> Result<Option<NodeRecord>> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?1"),
                [id],
                node_from_row,
            )
            .optional()
        })
    }

    fn list_nodes(&self, cluster_id: Option<&str>) -> Result<Vec<NodeRecord>> {
        let filter = if cluster_id.is_some() {
            "WHERE cluster_id = ?1"
        } else {
            ""
        };
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {NODE_COLUMNS} FROM nodes {filter} ORDER BY registered_at, id"
            ))?;
            stmt.query_map(rusqlite::params_from_iter(cluster_id), node_from_row)?
                .collect()
        })
    }

    fn node_versions(&self) -> Result<Vec<(String, String, u64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, cluster_id, issued_version FROM nodes")?;
            stmt.query_map([], |r| {
                let v: i64 = r.get(2)?;
                Ok((r.get(0)?, r.get(1)?, u64::try_from(v).unwrap_or(0)))
            })?
            .collect()
        })
    }

    fn delete_node(&self, id: &str) -> Result<bool> {
        self.write(|conn| {
            conn.execute("DELETE FROM nodes WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
    }

    fn touch_nodes(&self, seen: &[(String, Option<i64>)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt =
                    tx.prepare_cached("UPDATE nodes SET last_seen = ?2 WHERE id = ?1")?;
                for (id, at) in seen {
                    stmt.execute(params![id, at])?;
                }
            }
            tx.commit()
        })
    }

    fn insert_module(&self, m: &ModuleRecord) -> Result<()> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO modules (id, owner_id, name, created_at, body) VALUES (?1,?2,?3,?4,?5)",
                params![m.id, m.owner_id, m.name, m.created_at, m.body],
            )
            .map(|_| ())
        })
    }

    fn module(&self, id: &str) -> Result<Option<ModuleRecord>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id, owner_id, name, created_at, body FROM modules WHERE id = ?1",
                [id],
                |row| {
                    Ok(ModuleRecord {
                        id: row.get(0)?,
                        owner_id: row.get(1)?,
                        name: row.get(2)?,
                        created_at: row.get(3)?,
                        body: row.get(4)?,
                    })
                },
            )
            .optional()
        })
    }

    fn insert_swarm(&self, s: &SwarmRecord) -> Result<()> {
        self.write(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO swarms ({SWARM_COLUMNS}) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"
                ),
                params![
                    s.id,
                    s.cluster_id,
                    s.owner_id,
                    s.name,
                    s.status,
                    s.created_at,
                    s.last_start,
                    s.last_stop,
                    s.max_iteration,
                    s.network_id,
                    s.network_type,
                    s.graph,
                    s.networks
                ],
            )
            .map(|_| ())
        })
    }

    fn swarm(&self, id: &str) -> Result<Option<SwarmRecord>> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {SWARM_COLUMNS} FROM swarms WHERE id = ?1"),
                [id],
                swarm_from_row,
            )
            .optional()
        })
    }

    fn list_swarms(&self) -> Result<Vec<SwarmRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {SWARM_COLUMNS} FROM swarms ORDER BY created_at, id"
            ))?;
            stmt.query_map([], swarm_from_row)?.collect()
        })
    }

    fn set_swarm_status(&self, id: &str, status: i32, now: i64) -> Result<bool> {
        let column = stamped_column(status == SwarmStatusEnum::Active as i32);
        self.write(|conn| {
            conn.execute(
                &format!("UPDATE swarms SET status = ?2, {column} = ?3 WHERE id = ?1"),
                params![id, status, now],
            )
            .map(|n| n > 0)
        })
    }

    fn set_swarm_networks(&self, id: &str, networks: &[u8]) -> Result<bool> {
        self.write(|conn| {
            conn.execute(
                "UPDATE swarms SET networks = ?2 WHERE id = ?1",
                params![id, networks],
            )
            .map(|n| n > 0)
        })
    }

    fn set_swarm_global(&self, id: &str, tag: &str, data: &[u8]) -> Result<bool> {
        self.write(|conn| {
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM swarms WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            conn.execute(
                "INSERT OR REPLACE INTO swarm_globals (swarm_id, tag, data) VALUES (?1, ?2, ?3)",
                params![id, tag, data],
            )?;
            Ok(true)
        })
    }

    fn swarm_global_tags(&self, id: &str) -> Result<Vec<(String, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT tag, length(data) FROM swarm_globals WHERE swarm_id = ?1 ORDER BY tag",
            )?;
            stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    fn delete_swarm(&self, id: &str) -> Result<bool> {
        self.write(|conn| {
            conn.execute("DELETE FROM swarms WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str) -> ClusterRecord {
        ClusterRecord {
            id: id.into(),
            name: id.into(),
            owner_id: String::new(),
            users: Vec::new(),
            status: 0,
            created_at: 1,
            updated_at: 1,
            last_start: None,
            last_stop: None,
            bootstrap_not_before: 0,
            bootstrap_generation: 0,
        }
    }

    fn node(id: &str, cluster_id: &str, registered_at: i64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            cluster_id: cluster_id.into(),
            alias: None,
            fixed_alias: false,
            requested_id: None,
            issued_version: 1,
            token_expires_at: 0,
            registered_at,
            updated_at: registered_at,
            last_seen: None,
            overview: Vec::new(),
        }
    }

    #[test]
    fn nodes_list_by_cluster_or_all_in_registration_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("manager.db")).unwrap();
        store.create_cluster(&cluster("a")).unwrap();
        store.create_cluster(&cluster("b")).unwrap();
        store.upsert_node(&node("n3", "a", 3), &[]).unwrap();
        store.upsert_node(&node("n1", "b", 1), &[]).unwrap();
        store.upsert_node(&node("n2", "a", 2), &[]).unwrap();
        let ids = |c: Option<&str>| -> Vec<String> {
            store
                .list_nodes(c)
                .unwrap()
                .into_iter()
                .map(|n| n.id)
                .collect()
        };
        assert_eq!(ids(Some("a")), ["n2", "n3"]);
        assert_eq!(ids(Some("b")), ["n1"]);
        assert_eq!(ids(Some("none")), Vec::<String>::new());
        assert_eq!(ids(None), ["n1", "n2", "n3"]);
    }
}
