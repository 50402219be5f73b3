//! The embedded SQLite backend: WAL, durable commits and versioned migrations.
//!
//! One writer connection with `synchronous=FULL` commits credentials, tokens, revocations and
//! sessions durably before the caller acknowledges them. Reads go to a small pool of reader
//! connections, which WAL lets run beside the writer. Audit events use their own connection
//! with `synchronous=NORMAL`: they are written in batches and a power cut may lose the last
//! batch, which is the documented trade for not paying an fsync per authorized call.
//!
//! Write transactions begin `IMMEDIATE`. Two connections write (the writer and the audit
//! connection), and a deferred transaction that reads before it writes fails at once with
//! `SQLITE_BUSY_SNAPSHOT` when the other one committed in between: the busy timeout does not
//! cover that case, so a refresh under concurrent load answered UNAVAILABLE.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use secrecy::{ExposeSecret, SecretBox};

use super::{
    AuditEvent, AuditQuery, DataVersion, NewUser, RefreshOutcome, SessionRecord, SigningKeyRecord,
    Store, TokenKind, TokenRecord, TokenState, UserRecord, new_id,
};
use crate::error::{Error, Result};

mod platform;

/// Versioned migrations; index + 1 is the schema version stored in `PRAGMA user_version`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: users, tokens, sessions, refresh tokens, signing keys, audit.
    "
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL DEFAULT '',
        password_hash TEXT,
        scopes TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_login INTEGER,
        last_logout INTEGER,
        password_changed_at INTEGER,
        scopes_updated_at INTEGER NOT NULL,
        tokens_not_before INTEGER
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE tokens (
        jti TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT,
        scopes TEXT NOT NULL,
        session_id TEXT,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE INDEX tokens_by_user ON tokens(user_id, issued_at);
    CREATE INDEX tokens_by_session ON tokens(session_id);
    CREATE TABLE refresh_tokens (
        digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_der BLOB NOT NULL,
        public BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        subject TEXT,
        token_id TEXT,
        method TEXT NOT NULL,
        resource TEXT,
        allowed INTEGER NOT NULL,
        reason TEXT NOT NULL,
        peer TEXT,
        client_identity TEXT
    );
    CREATE INDEX audit_by_time ON audit(at_ms);
    ",
    // 2: clusters, bootstrap tokens, nodes, modules, swarms (see `platform.rs`).
    platform::MIGRATION,
    // 3: identical decisions within one audit write window share a row.
    "
    ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE audit ADD COLUMN last_at_ms INTEGER;
    ",
    // 4: exact cutoffs. A per-user generation replaces the whole-second `tokens_not_before`
    // check; what the old check revoked is marked revoked here, so nothing comes back.
    "
    ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tokens ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    UPDATE tokens SET revoked_at = COALESCE(revoked_at,
            (SELECT u.tokens_not_before FROM users u WHERE u.id = tokens.user_id))
        WHERE issued_at < (SELECT u.tokens_not_before FROM users u WHERE u.id = tokens.user_id);
    UPDATE sessions SET revoked_at = COALESCE(revoked_at,
            (SELECT u.tokens_not_before FROM users u WHERE u.id = sessions.user_id))
        WHERE created_at < (SELECT u.tokens_not_before FROM users u WHERE u.id = sessions.user_id);
    ",
    // 5: exact bootstrap revocation: a per-cluster generation carried in the token.
    "
    ALTER TABLE clusters ADD COLUMN bootstrap_generation INTEGER NOT NULL DEFAULT 0;
    ",
    // 6: one row whose only purpose is to change: the WAL-index check's probe (see
    // `SqliteStore::check_version_moved`).
    "
    CREATE TABLE wal_probe (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT INTO wal_probe (id, n) VALUES (1, 0);
    ",
];

/// How many reader connections serve lookups beside the writer.
const READERS: usize = 4;

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    audit: Mutex<Connection>,
    next_reader: AtomicUsize,
    /// The WAL index (`<db>-shm`), read for [`Store::data_version`].
    shm: Option<std::fs::File>,
    /// Cleared for good when one of our own commits left the WAL-index header unchanged:
    /// the file read is then not the one SQLite uses, and its version would hide changes.
    shm_live: AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The directory holds the database with password hashes and private keys, and
            // SQLite's journal files beside it: owner-only, whatever the umask.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let writer = connect(path, "FULL")?;
        // The database holds password hashes and private keys: owner-only, like any secret file.
        restrict_mode(path)?;
        migrate(path, &writer)?;
        let readers = (0..READERS)
            .map(|_| connect(path, "FULL").map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let audit = connect(path, "NORMAL")?;
        // Our connections keep the WAL index open, so this is the file every process that
        // commits to the database updates. SQLite names it after the database's resolved
        // path (symlinks followed), so ask SQLite for that rather than using `path`.
        // Without it, nothing is cached (data_version: None).
        let shm_path = format!("{}-shm", writer.path().unwrap_or_default());
        let shm = std::fs::File::open(&shm_path).ok();
        if shm.is_none() {
            tracing::warn!(
                path = %shm_path,
                "cannot open the SQLite WAL index; token checks will read the database on every call"
            );
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            audit: Mutex::new(audit),
            next_reader: AtomicUsize::new(0),
            shm_live: AtomicBool::new(shm.is_some()),
            shm,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Storage {
            path: self.path.clone(),
            source,
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        // A poisoned lock only means another call panicked mid-way; SQLite rolled that
        // transaction back, so the connection itself is still sound.
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let before = (conn.total_changes(), self.data_version());
        let result = f(&mut conn).map_err(|e| self.err(e));
        if result.is_ok() && conn.total_changes() != before.0 {
            self.check_version_moved(&conn, before.1);
        }
        result
    }

    /// After a commit of ours that changed rows, the WAL-index header should differ from the
    /// one read before it. It may not: SQLite counts a row rewritten with the bytes it already
    /// held (a second sign-in within the same second) as changed, yet writes no page and
    /// leaves the header alone. So an unchanged header is confirmed with a commit that
    /// certainly writes a page; if the header misses that one too, the file we read is not
    /// SQLite's live index (replaced, or reached through another path), and caching on it
    /// would hide revocations: stop trusting it.
    fn check_version_moved(&self, conn: &Connection, before: Option<DataVersion>) {
        if before.is_none() || self.data_version() != before {
            return;
        }
        let probed = conn.execute("UPDATE wal_probe SET n = n + 1 WHERE id = 1", []);
        if !matches!(probed, Ok(1)) || self.data_version() == before {
            self.shm_live.store(false, Ordering::Relaxed);
            tracing::error!(
                path = %self.path.display(),
                "the SQLite WAL index did not change on a commit; token checks now read the \
                 database on every call (restart the manager to cache again)"
            );
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return f(&conn).map_err(|e| self.err(e));
            }
        }
        // Every reader is busy: wait on one, spreading waiters round-robin.
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| self.err(e))
    }
}

fn connect(path: &Path, synchronous: &str) -> Result<Connection> {
    let map = |source| Error::Storage {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(map)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(map)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(map)?;
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(map)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map)?;
    Ok(conn)
}

fn restrict_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn migrate(path: &Path, conn: &Connection) -> Result<()> {
    let map = |source| Error::Storage {
        path: path.to_path_buf(),
        source,
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(map)?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > supported {
        return Err(Error::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let next = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        // Each migration and its version bump commit together, so a crash never leaves a
        // half-applied schema.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .map_err(map)?;
    }
    Ok(())
}

/// A space-separated column (scopes, a cluster's users) from its words.
fn join_words(words: &[String]) -> String {
    words.join(" ")
}

/// The words of a space-separated column.
fn split_words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

const USER_COLUMNS: &str = "id, username, email, scopes, created_at, updated_at, last_login, \
    last_logout, password_changed_at, scopes_updated_at, tokens_not_before, generation";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        scopes: split_words(&row.get::<_, String>(3)?),
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        last_login: row.get(6)?,
        last_logout: row.get(7)?,
        password_changed_at: row.get(8)?,
        scopes_updated_at: row.get(9)?,
        tokens_not_before: row.get(10)?,
        generation: row.get(11)?,
    })
}

const TOKEN_COLUMNS: &str = "jti, user_id, kind, name, scopes, session_id, issued_at, expires_at, \
    last_used_at, revoked_at, generation";

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        jti: row.get(0)?,
        user_id: row.get(1)?,
        kind: TokenKind::parse(&row.get::<_, String>(2)?),
        name: row.get(3)?,
        scopes: split_words(&row.get::<_, String>(4)?),
        session_id: row.get(5)?,
        issued_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_used_at: row.get(8)?,
        revoked_at: row.get(9)?,
        generation: row.get(10)?,
    })
}

const SESSION_COLUMNS: &str = "id, user_id, created_at, expires_at, revoked_at, generation";

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        user_id: row.get(1)?,
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        revoked_at: row.get(4)?,
        generation: row.get(5)?,
    })
}

impl Store for SqliteStore {
    /// The WAL-index header (the first 48 bytes of `<db>-shm`, see
    /// <https://sqlite.org/walformat.html>): SQLite rewrites it on every commit from any
    /// connection in any process, incrementing its change counter, before the commit returns.
    /// One `pread`, no lock: a torn read only ever looks like a change.
    fn data_version(&self) -> Option<DataVersion> {
        use std::os::unix::fs::FileExt;
        if !self.shm_live.load(Ordering::Relaxed) {
            return None;
        }
        let mut header = [0u8; 48];
        self.shm.as_ref()?.read_exact_at(&mut header, 0).ok()?;
        Some(DataVersion(header))
    }

    fn create_user(&self, user: NewUser, now: i64) -> Result<UserRecord> {
        let id = new_id();
        let scopes = join_words(&user.scopes);
        let inserted = self.write(|c| {
            c.execute(
                "INSERT INTO users (id, username, email, password_hash, scopes, created_at, \
                 updated_at, password_changed_at, scopes_updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?6) ON CONFLICT(username) DO NOTHING",
                params![
                    id,
                    user.username,
                    user.email,
                    user.password_hash,
                    scopes,
                    now,
                    user.password_hash.as_ref().map(|_| now)
                ],
            )
        })?;
        if inserted == 0 {
            return Err(Error::UserExists(user.username));
        }
        Ok(UserRecord {
            id,
            username: user.username,
            email: user.email,
            scopes: user.scopes,
            created_at: now,
            updated_at: now,
            last_login: None,
            last_logout: None,
            password_changed_at: user.password_hash.map(|_| now),
            scopes_updated_at: now,
            tokens_not_before: None,
            generation: 0,
        })
    }

    fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row([id], user_from_row)
                .optional()
        })
    }

    fn credentials(&self, username: &str) -> Result<Option<(UserRecord, Option<String>)>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1"
            ))?
            .query_row([username], |row| Ok((user_from_row(row)?, row.get(12)?)))
            .optional()
        })
    }

    fn list_users(&self) -> Result<Vec<UserRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))?
            .query_map([], user_from_row)?
            .collect()
        })
    }

    fn delete_user(&self, id: &str) -> Result<bool> {
        let outcome = self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if would_leave_no_admin(&tx, id, None)? {
                return Ok(Guarded::LastAdmin);
            }
            let n = tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(Guarded::Done(n > 0))
        })?;
        outcome.into_result()
    }

    fn set_scopes(&self, id: &str, scopes: &[String], now: i64) -> Result<bool> {
        let outcome = self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if would_leave_no_admin(&tx, id, Some(scopes))? {
                return Ok(Guarded::LastAdmin);
            }
            let n = tx.execute(
                "UPDATE users SET scopes = ?2, scopes_updated_at = ?3, updated_at = ?3 \
                 WHERE id = ?1",
                params![id, join_words(scopes), now],
            )?;
            tx.commit()?;
            Ok(Guarded::Done(n > 0))
        })?;
        outcome.into_result()
    }

    fn set_password(&self, id: &str, hash: &str, now: i64) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE users SET password_hash = ?2, password_changed_at = ?3, \
                 updated_at = ?3 WHERE id = ?1",
                params![id, hash, now],
            )?;
            if n > 0 {
                end_user_credentials_tx(&tx, id, now)?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn record_login(&self, id: &str, now: i64) -> Result<()> {
        self.write(|c| {
            c.execute(
                "UPDATE users SET last_login = ?2 WHERE id = ?1",
                params![id, now],
            )
        })
        .map(drop)
    }

    fn record_logout(&self, id: &str, now: i64) -> Result<()> {
        self.write(|c| {
            c.execute(
                "UPDATE users SET last_logout = ?2 WHERE id = ?1",
                params![id, now],
            )
        })
        .map(drop)
    }

    fn record_token(&self, t: &TokenRecord) -> Result<()> {
        self.write(|c| {
            c.execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    t.jti,
                    t.user_id,
                    t.kind.as_str(),
                    t.name,
                    join_words(&t.scopes),
                    t.session_id,
                    t.issued_at,
                    t.expires_at,
                    t.last_used_at,
                    t.revoked_at,
                    t.generation
                ],
            )
        })
        .map(drop)
    }

    fn token_state(&self, jti: &str) -> Result<Option<TokenState>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT t.revoked_at IS NOT NULL, s.revoked_at IS NOT NULL, t.issued_at, \
                 t.generation, u.generation, u.scopes, t.session_id, t.user_id, t.kind, \
                 t.expires_at FROM tokens t JOIN users u ON u.id = t.user_id \
                 LEFT JOIN sessions s ON s.id = t.session_id WHERE t.jti = ?1",
            )?
            .query_row([jti], |row| {
                Ok(TokenState {
                    revoked: row.get(0)?,
                    session_revoked: row.get::<_, Option<bool>>(1)?.unwrap_or(false),
                    issued_at: row.get(2)?,
                    generation: row.get(3)?,
                    user_generation: row.get(4)?,
                    user_scopes: split_words(&row.get::<_, String>(5)?),
                    session_id: row.get(6)?,
                    user_id: row.get(7)?,
                    kind: TokenKind::parse(&row.get::<_, String>(8)?),
                    expires_at: row.get(9)?,
                })
            })
            .optional()
        })
    }

    fn token(&self, jti: &str) -> Result<Option<TokenRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = ?1"
            ))?
            .query_row([jti], token_from_row)
            .optional()
        })
    }

    fn list_tokens(
        &self,
        user_id: Option<&str>,
        kind: Option<TokenKind>,
        include_inactive: bool,
        now: i64,
    ) -> Result<Vec<TokenRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens t WHERE (?1 IS NULL OR user_id = ?1) \
                 AND (?2 IS NULL OR kind = ?2) AND (?3 OR (revoked_at IS NULL \
                 AND expires_at > ?4 AND generation >= COALESCE((SELECT generation \
                 FROM users u WHERE u.id = t.user_id), 0))) ORDER BY issued_at DESC, rowid DESC"
            ))?
            .query_map(
                params![user_id, kind.map(TokenKind::as_str), include_inactive, now],
                token_from_row,
            )?
            .collect()
        })
    }

    fn revoke_token(&self, jti: &str, now: i64) -> Result<bool> {
        self.write(|c| {
            c.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE jti = ?1",
                params![jti, now],
            )
        })
        .map(|n| n > 0)
    }

    fn revoke_user_credentials(&self, user_id: &str, now: i64) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = end_user_credentials_tx(&tx, user_id, now)?;
            tx.commit()?;
            Ok(found)
        })
    }

    fn touch_tokens(&self, uses: &[(String, i64)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut conn = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let run = |c: &mut Connection| -> rusqlite::Result<()> {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) \
                     WHERE jti = ?1",
                )?;
                for (jti, at) in uses {
                    stmt.execute(params![jti, at])?;
                }
            }
            tx.commit()
        };
        run(&mut conn).map_err(|e| self.err(e))
    }

    fn create_session(
        &self,
        s: &SessionRecord,
        refresh_digest: &str,
        refresh_expires_at: i64,
    ) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                &format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    s.id,
                    s.user_id,
                    s.created_at,
                    s.expires_at,
                    s.revoked_at,
                    s.generation
                ],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (digest, session_id, expires_at) VALUES (?1, ?2, ?3)",
                params![refresh_digest, s.id, refresh_expires_at],
            )?;
            tx.commit()
        })
    }

    fn rotate_refresh(
        &self,
        digest: &str,
        next_digest: &str,
        next_expires_at: i64,
        now: i64,
    ) -> Result<RefreshOutcome> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT r.expires_at, r.used_at, u.generation, {} FROM refresh_tokens r \
                         JOIN sessions s ON s.id = r.session_id \
                         JOIN users u ON u.id = s.user_id WHERE r.digest = ?1",
                        SESSION_COLUMNS
                            .split(", ")
                            .map(|col| format!("s.{col}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    [digest],
                    |row| {
                        let expires: i64 = row.get(0)?;
                        let used: Option<i64> = row.get(1)?;
                        let user_generation: i64 = row.get(2)?;
                        let session = SessionRecord {
                            id: row.get(3)?,
                            user_id: row.get(4)?,
                            created_at: row.get(5)?,
                            expires_at: row.get(6)?,
                            revoked_at: row.get(7)?,
                            generation: row.get(8)?,
                        };
                        Ok((expires, used, user_generation, session))
                    },
                )
                .optional()?;
            let Some((expires, used, user_generation, session)) = found else {
                return Ok(RefreshOutcome::Unknown);
            };
            if session.revoked_at.is_some() {
                return Ok(RefreshOutcome::Revoked);
            }
            if session.generation < user_generation {
                // The user's credentials were ended after this session began (a password
                // change, a revocation of everything); a session missed by that sweep, such
                // as one created concurrently, ends here.
                revoke_session_tx(&tx, &session.id, now)?;
                tx.commit()?;
                return Ok(RefreshOutcome::Revoked);
            }
            if used.is_some() {
                // Reuse: someone holds an older token of this family. Revoke all of it, so
                // neither the thief nor the victim keeps a working session.
                revoke_session_tx(&tx, &session.id, now)?;
                tx.commit()?;
                return Ok(RefreshOutcome::Reused);
            }
            if expires <= now || session.expires_at <= now {
                return Ok(RefreshOutcome::Expired);
            }
            tx.execute(
                "UPDATE refresh_tokens SET used_at = ?2 WHERE digest = ?1",
                params![digest, now],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (digest, session_id, expires_at) VALUES (?1, ?2, ?3)",
                params![
                    next_digest,
                    session.id,
                    next_expires_at.min(session.expires_at)
                ],
            )?;
            tx.commit()?;
            Ok(RefreshOutcome::Rotated(session))
        })
    }

    fn session_of_refresh(&self, digest: &str) -> Result<Option<SessionRecord>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.generation \
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.digest = ?1",
            )?
            .query_row([digest], session_from_row)
            .optional()
        })
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
            ))?
            .query_row([id], session_from_row)
            .optional()
        })
    }

    fn revoke_session(&self, id: &str, now: i64) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = revoke_session_tx(&tx, id, now)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT kid, alg, private_der, public, created_at, retired_at FROM signing_keys \
                 ORDER BY created_at DESC, rowid DESC",
            )?
            .query_map([], |row| {
                Ok(SigningKeyRecord {
                    kid: row.get(0)?,
                    alg: row.get(1)?,
                    private_der: SecretBox::new(Box::new(row.get::<_, Vec<u8>>(2)?)),
                    public: row.get(3)?,
                    created_at: row.get(4)?,
                    retired_at: row.get(5)?,
                })
            })?
            .collect()
        })
    }

    fn add_signing_key(&self, key: &SigningKeyRecord, now: i64) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [now],
            )?;
            tx.execute(
                "INSERT INTO signing_keys (kid, alg, private_der, public, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.kid,
                    key.alg,
                    key.private_der.expose_secret(),
                    key.public,
                    key.created_at
                ],
            )?;
            tx.commit()
        })
    }

    fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let run = |c: &mut Connection| -> rusqlite::Result<()> {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, subject, token_id, method, resource, allowed, \
                     reason, peer, client_identity, count, last_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for e in events {
                    stmt.execute(params![
                        e.at_ms,
                        e.subject,
                        e.token_id,
                        e.method,
                        e.resource,
                        e.allowed,
                        e.reason,
                        e.peer,
                        e.client_identity,
                        i64::try_from(e.count).unwrap_or(i64::MAX),
                        e.last_at_ms
                    ])?;
                }
            }
            tx.commit()
        };
        run(&mut conn).map_err(|e| self.err(e))
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT at_ms, subject, token_id, method, resource, allowed, reason, peer, \
                 client_identity, count, COALESCE(last_at_ms, at_ms) FROM audit \
                 WHERE (?1 IS NULL OR at_ms >= ?1) \
                 AND (?2 IS NULL OR subject = ?2) AND (?3 IS NULL OR instr(method, ?3) > 0) \
                 AND (NOT ?4 OR allowed = 0) ORDER BY id DESC LIMIT ?5",
            )?
            .query_map(
                params![q.since_ms, q.subject, q.method, q.denied_only, q.limit],
                |row| {
                    Ok(AuditEvent {
                        at_ms: row.get(0)?,
                        subject: row.get(1)?,
                        token_id: row.get(2)?,
                        method: row.get(3)?,
                        resource: row.get(4)?,
                        allowed: row.get(5)?,
                        reason: row.get(6)?,
                        peer: row.get(7)?,
                        client_identity: row.get(8)?,
                        count: u64::try_from(row.get::<_, i64>(9)?).unwrap_or(1),
                        last_at_ms: row.get(10)?,
                    })
                },
            )?
            .collect()
        })
    }

    fn prune_audit(&self, older_than_ms: Option<i64>, keep_rows: Option<u64>) -> Result<u64> {
        // Deleting in batches keeps each write transaction short, so a prune of a large
        // trail never holds the audit writer (or the admin CLI) back for long.
        const BATCH: i64 = 5_000;
        let keep = keep_rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let conn = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let mut deleted: u64 = 0;
        loop {
            let n = conn
                .prepare_cached(
                    "DELETE FROM audit WHERE id IN (SELECT id FROM audit \
                     WHERE (?1 IS NOT NULL AND at_ms < ?1) \
                     OR (?2 IS NOT NULL AND id <= (SELECT MAX(id) FROM audit) - ?2) \
                     ORDER BY id LIMIT ?3)",
                )
                .and_then(|mut stmt| stmt.execute(params![older_than_ms, keep, BATCH]))
                .map_err(|e| self.err(e))?;
            deleted += n as u64;
            if i64::try_from(n).unwrap_or(i64::MAX) < BATCH {
                return Ok(deleted);
            }
        }
    }
}

/// What a write guarded by the last-administrator rule did.
enum Guarded {
    Done(bool),
    LastAdmin,
}

impl Guarded {
    fn into_result(self) -> Result<bool> {
        match self {
            Guarded::Done(found) => Ok(found),
            Guarded::LastAdmin => Err(Error::LastAdmin),
        }
    }
}

/// Whether replacing the scopes of `id` by `next` (or deleting it, with `None`) would leave
/// no user holding `admin:*`. Read inside the write transaction, so two concurrent demotions
/// of the last two administrators cannot both pass.
fn would_leave_no_admin(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    next: Option<&[String]>,
) -> rusqlite::Result<bool> {
    if next.is_some_and(|s| s.iter().any(|s| s == crate::scopes::ADMIN)) {
        return Ok(false);
    }
    let holds = |scopes: &str| {
        split_words(scopes)
            .iter()
            .any(|s| s == crate::scopes::ADMIN)
    };
    let target: Option<String> = tx
        .query_row("SELECT scopes FROM users WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    if !target.as_deref().is_some_and(holds) {
        return Ok(false);
    }
    let mut others = tx.prepare_cached("SELECT scopes FROM users WHERE id != ?1")?;
    let mut rows = others.query([id])?;
    while let Some(row) = rows.next()? {
        if holds(&row.get::<_, String>(0)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Ends everything issued to a user so far: the generation moves on (which voids every
/// token and session recorded under an older one) and the user's sessions are marked
/// revoked, so listings show them ended. False when there is no such user.
fn end_user_credentials_tx(
    tx: &rusqlite::Transaction<'_>,
    user_id: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE users SET generation = generation + 1, \
         tokens_not_before = MAX(COALESCE(tokens_not_before, 0), ?2) WHERE id = ?1",
        params![user_id, now],
    )?;
    tx.execute(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE user_id = ?1",
        params![user_id, now],
    )?;
    Ok(n > 0)
}

fn revoke_session_tx(tx: &rusqlite::Transaction<'_>, id: &str, now: i64) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    tx.execute(
        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE session_id = ?1",
        params![id, now],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secs_of;

    fn now_secs() -> i64 {
        secs_of(&manta_auth::SystemClock)
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("manager.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn data_version_changes_with_every_commit_from_any_connection() {
        let (dir, s) = store();
        let other = SqliteStore::open(&dir.path().join("manager.db")).unwrap();
        let v0 = s.data_version().expect("a version");
        assert_eq!(s.data_version(), Some(v0), "no commit, no change");
        user(&other, "ann");
        let v1 = s.data_version().unwrap();
        assert_ne!(v1, v0, "another connection's commit is seen");
        user(&s, "bob");
        assert_ne!(s.data_version().unwrap(), v1, "our own commit is seen");
    }

    #[test]
    fn data_version_reads_the_index_sqlite_uses_behind_a_symlink() {
        // `live/manager.db` is a link to `real/manager.db`; SQLite keeps its index beside the
        // real file. A stale `live/manager.db-shm` must not be mistaken for it, or a cached
        // token would outlive its revocation.
        let dir = tempfile::tempdir().unwrap();
        let (real, live) = (dir.path().join("real"), dir.path().join("live"));
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let owner = SqliteStore::open(&real.join("manager.db")).unwrap();
        std::os::unix::fs::symlink(real.join("manager.db"), live.join("manager.db")).unwrap();
        std::fs::write(live.join("manager.db-shm"), [0u8; 4096]).unwrap();
        let s = SqliteStore::open(&live.join("manager.db")).unwrap();
        let before = s.data_version().expect("a version");
        user(&owner, "ann");
        assert_ne!(s.data_version(), Some(before));
    }

    #[test]
    fn an_index_that_misses_our_own_commit_is_never_trusted_again() {
        let (dir, mut s) = store();
        assert!(s.data_version().is_some());
        // The file read for the version is a copy, not the index SQLite updates.
        let stale = dir.path().join("stale-shm");
        std::fs::copy(dir.path().join("manager.db-shm"), &stale).unwrap();
        s.shm = Some(std::fs::File::open(&stale).unwrap());
        user(&s, "ann");
        assert_eq!(s.data_version(), None, "no version: callers must not cache");
        user(&s, "bob");
        assert_eq!(s.data_version(), None);
    }

    #[test]
    fn a_commit_that_rewrites_the_same_bytes_keeps_the_index_trusted() {
        // Two sign-ins in one second write the same `last_login`: SQLite counts a changed
        // row but writes no page. That must not be taken for a stale index.
        let (_dir, s) = store();
        let ann = user(&s, "ann");
        s.record_login(&ann.id, 1_000).unwrap();
        let before = s.data_version().expect("a version");
        s.record_login(&ann.id, 1_000).unwrap();
        let after = s
            .data_version()
            .expect("still trusted after a byte-identical rewrite");
        // The probe moved the header, so readers caching on it see a commit happened.
        assert_ne!(after, before);
        s.record_login(&ann.id, 1_001).unwrap();
        assert_ne!(s.data_version().expect("a version"), after);
    }

    fn user(store: &SqliteStore, name: &str) -> UserRecord {
        store
            .create_user(
                NewUser {
                    username: name.into(),
                    email: String::new(),
                    password_hash: None,
                    scopes: vec!["user:read".into()],
                },
                100,
            )
            .unwrap()
    }

    fn token(user_id: &str, jti: &str, session: Option<&str>, issued_at: i64) -> TokenRecord {
        TokenRecord {
            jti: jti.into(),
            user_id: user_id.into(),
            kind: TokenKind::Access,
            name: None,
            scopes: vec![],
            session_id: session.map(str::to_owned),
            issued_at,
            expires_at: issued_at + 3600,
            last_used_at: None,
            revoked_at: None,
            generation: 0,
        }
    }

    #[test]
    fn duplicate_user_names_are_refused() {
        let (_d, s) = store();
        let alice = user(&s, "alice");
        assert_eq!(alice.id.len(), 32);
        let err = s
            .create_user(
                NewUser {
                    username: "alice".into(),
                    email: String::new(),
                    password_hash: None,
                    scopes: vec![],
                },
                1,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::UserExists(ref n) if n == "alice"),
            "{err}"
        );
    }

    #[test]
    fn database_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, s) = store();
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let id = {
            let s = SqliteStore::open(&path).unwrap();
            user(&s, "bob").id
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.user_by_id(&id).unwrap().unwrap().username, "bob");
    }

    #[test]
    fn newer_schema_is_refused_with_upgrade_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("upgrade manta-manager"), "{err}");
    }

    #[test]
    fn token_state_reflects_jti_session_and_subject_revocation() {
        let (_d, s) = store();
        let u = user(&s, "carol");
        let now = now_secs();
        let session = SessionRecord {
            id: new_id(),
            user_id: u.id.clone(),
            created_at: now,
            expires_at: now + 1000,
            revoked_at: None,
            generation: 0,
        };
        s.create_session(&session, "d1", now + 1000).unwrap();
        s.record_token(&token(&u.id, "a", Some(&session.id), now))
            .unwrap();
        s.record_token(&token(&u.id, "b", None, now)).unwrap();
        assert!(s.token_state("missing").unwrap().is_none());
        let a = s.token_state("a").unwrap().unwrap();
        assert!(!a.revoked && !a.session_revoked);

        assert!(s.revoke_token("b", now).unwrap());
        assert!(s.token_state("b").unwrap().unwrap().revoked);
        assert!(!s.revoke_token("nope", now).unwrap());

        assert!(s.revoke_session(&session.id, now).unwrap());
        let a = s.token_state("a").unwrap().unwrap();
        assert!(a.session_revoked && a.revoked);

        assert!(s.revoke_user_credentials(&u.id, now).unwrap());
        let a = s.token_state("a").unwrap().unwrap();
        assert_eq!((a.generation, a.user_generation), (0, 1));
        assert_eq!(
            (a.user_id.as_str(), a.expires_at),
            (u.id.as_str(), now + 3600)
        );
        assert!(!s.revoke_user_credentials("nobody", now).unwrap());
    }

    #[test]
    fn ending_a_users_credentials_ends_its_sessions_whatever_the_clock_says() {
        let (_d, s) = store();
        let u = user(&s, "nia");
        let now = now_secs();
        let session = SessionRecord {
            id: new_id(),
            user_id: u.id.clone(),
            created_at: now,
            expires_at: now + 1000,
            revoked_at: None,
            generation: 0,
        };
        s.create_session(&session, "r1", now + 500).unwrap();
        // A password change at the very second the session was created still ends it.
        assert!(s.set_password(&u.id, "$argon2id$fake", now).unwrap());
        assert_eq!(
            s.rotate_refresh("r1", "r2", now + 500, now).unwrap(),
            RefreshOutcome::Revoked
        );
        // A session started concurrently under the old generation is ended by the refresh
        // check itself, even though no sweep marked it.
        let late = SessionRecord {
            id: new_id(),
            ..session
        };
        s.create_session(&late, "r3", now + 500).unwrap();
        assert_eq!(
            s.rotate_refresh("r3", "r4", now + 500, now).unwrap(),
            RefreshOutcome::Revoked
        );
        assert!(s.session(&late.id).unwrap().unwrap().revoked_at.is_some());
        // One under the current generation works.
        let current = SessionRecord {
            id: new_id(),
            generation: 1,
            ..late
        };
        s.create_session(&current, "r5", now + 500).unwrap();
        assert!(matches!(
            s.rotate_refresh("r5", "r6", now + 500, now).unwrap(),
            RefreshOutcome::Rotated(_)
        ));
    }

    #[test]
    fn the_last_administrator_can_be_neither_demoted_nor_deleted() {
        let (_d, s) = store();
        let admin = user(&s, "root");
        let admin_scopes = vec!["admin:*".to_owned()];
        assert!(s.set_scopes(&admin.id, &admin_scopes, 1).unwrap());
        for err in [
            s.set_scopes(&admin.id, &["user:read".into()], 2)
                .unwrap_err(),
            s.delete_user(&admin.id).unwrap_err(),
        ] {
            assert!(matches!(err, Error::LastAdmin), "{err}");
        }
        assert_eq!(
            s.user_by_id(&admin.id).unwrap().unwrap().scopes,
            admin_scopes
        );
        // With a second administrator, either may go.
        let other = user(&s, "deputy");
        s.set_scopes(&other.id, &admin_scopes, 3).unwrap();
        assert!(s.set_scopes(&admin.id, &[], 4).unwrap());
        assert!(matches!(s.delete_user(&other.id), Err(Error::LastAdmin)));
        // Non-administrators are unaffected, and a missing user is just missing.
        let plain = user(&s, "plain");
        assert!(s.delete_user(&plain.id).unwrap());
        assert!(!s.delete_user("nobody").unwrap());
    }

    #[test]
    fn whole_second_cutoffs_of_an_older_store_stay_in_force_after_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            // A version-3 store: the old schema, with a cutoff at 200.
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO users (id, username, created_at, updated_at, scopes_updated_at, \
                 tokens_not_before) VALUES ('u1', 'old', 1, 1, 1, 200);
                 INSERT INTO sessions VALUES ('s-old', 'u1', 150, 9999999999, NULL);
                 INSERT INTO sessions VALUES ('s-new', 'u1', 250, 9999999999, NULL);
                 INSERT INTO tokens VALUES ('t-old', 'u1', 'api', 'n', '', NULL, 199, \
                 9999999999, NULL, NULL);
                 INSERT INTO tokens VALUES ('t-new', 'u1', 'api', 'n', '', NULL, 200, \
                 9999999999, NULL, NULL);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.token_state("t-old").unwrap().unwrap().revoked);
        assert!(!s.token_state("t-new").unwrap().unwrap().revoked);
        assert!(s.session("s-old").unwrap().unwrap().revoked_at.is_some());
        assert!(s.session("s-new").unwrap().unwrap().revoked_at.is_none());
    }

    #[test]
    fn refresh_rotation_then_reuse_revokes_the_family() {
        let (_d, s) = store();
        let u = user(&s, "dave");
        let now = now_secs();
        let session = SessionRecord {
            id: new_id(),
            user_id: u.id.clone(),
            created_at: now,
            expires_at: now + 1000,
            revoked_at: None,
            generation: 0,
        };
        s.create_session(&session, "r1", now + 500).unwrap();
        s.record_token(&token(&u.id, "acc", Some(&session.id), now))
            .unwrap();
        assert!(matches!(
            s.rotate_refresh("r1", "r2", now + 500, now).unwrap(),
            RefreshOutcome::Rotated(ref got) if got.id == session.id
        ));
        assert_eq!(
            s.rotate_refresh("r1", "r3", now + 500, now).unwrap(),
            RefreshOutcome::Reused
        );
        // The legitimate successor is dead too, and so is the access token.
        assert_eq!(
            s.rotate_refresh("r2", "r4", now + 500, now).unwrap(),
            RefreshOutcome::Revoked
        );
        assert!(s.token_state("acc").unwrap().unwrap().session_revoked);
        assert_eq!(
            s.rotate_refresh("zz", "r5", now, now).unwrap(),
            RefreshOutcome::Unknown
        );
    }

    #[test]
    fn expired_refresh_token_is_refused() {
        let (_d, s) = store();
        let u = user(&s, "erin");
        let session = SessionRecord {
            id: new_id(),
            user_id: u.id.clone(),
            created_at: 0,
            expires_at: 50,
            revoked_at: None,
            generation: 0,
        };
        s.create_session(&session, "r1", 40).unwrap();
        assert_eq!(
            s.rotate_refresh("r1", "r2", 100, 60).unwrap(),
            RefreshOutcome::Expired
        );
    }

    #[test]
    fn listing_tokens_hides_inactive_unless_asked() {
        let (_d, s) = store();
        let u = user(&s, "fay");
        let now = now_secs();
        s.record_token(&token(&u.id, "live", None, now)).unwrap();
        s.record_token(&token(&u.id, "dead", None, now)).unwrap();
        s.revoke_token("dead", now).unwrap();
        let active: Vec<_> = s.list_tokens(Some(&u.id), None, false, now).unwrap();
        assert_eq!(
            active.iter().map(|t| t.jti.as_str()).collect::<Vec<_>>(),
            ["live"]
        );
        assert_eq!(
            s.list_tokens(Some(&u.id), None, true, now).unwrap().len(),
            2
        );
        s.touch_tokens(&[("live".into(), now + 7)]).unwrap();
        assert_eq!(
            s.token("live").unwrap().unwrap().last_used_at,
            Some(now + 7)
        );
    }

    #[test]
    fn deleting_a_user_removes_its_tokens() {
        let (_d, s) = store();
        let u = user(&s, "gus");
        s.record_token(&token(&u.id, "t", None, 1)).unwrap();
        assert!(s.delete_user(&u.id).unwrap());
        assert!(s.token("t").unwrap().is_none());
        assert!(!s.delete_user(&u.id).unwrap());
    }

    #[test]
    fn audit_events_round_trip_with_filters() {
        let (_d, s) = store();
        let event = |allowed, method: &str| AuditEvent {
            at_ms: 10,
            last_at_ms: 10,
            count: 1,
            subject: Some("u1".into()),
            token_id: None,
            method: method.into(),
            resource: None,
            allowed,
            reason: "r".into(),
            peer: Some("127.0.0.1:1".into()),
            client_identity: None,
        };
        s.append_audit(&[event(true, "/a/GetUser"), event(false, "/a/ListUserIds")])
            .unwrap();
        let all = s
            .query_audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].method, "/a/ListUserIds", "newest first");
        let denied = s
            .query_audit(&AuditQuery {
                denied_only: true,
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(denied, vec![event(false, "/a/ListUserIds")]);
    }

    #[test]
    fn rotating_keys_retires_the_previous_one() {
        let (_d, s) = store();
        let key = |kid: &str, at| SigningKeyRecord {
            kid: kid.into(),
            alg: "EdDSA".into(),
            private_der: SecretBox::new(Box::new(vec![1, 2, 3])),
            public: vec![4],
            created_at: at,
            retired_at: None,
        };
        s.add_signing_key(&key("k1", 1), 1).unwrap();
        s.add_signing_key(&key("k2", 2), 2).unwrap();
        let keys = s.signing_keys().unwrap();
        assert_eq!(keys[0].kid, "k2");
        assert_eq!(keys[0].retired_at, None);
        assert_eq!(keys[1].retired_at, Some(2));
        assert_eq!(keys[1].private_der.expose_secret(), &vec![1, 2, 3]);
    }
}
