//! The PostgreSQL store, shared by several filers. One row per entry in `kelp_entries`
//! (primary key (dir, name), byte-wise "C" collation), so a page of a directory is an index
//! range scan at any size; records in `kelp_records`. A batch is one transaction; an
//! expectation is checked by the statement itself (`INSERT ... ON CONFLICT DO NOTHING`,
//! `UPDATE/DELETE ... WHERE meta = $expected`), so concurrent filers never both win.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use super::{
    BoxFuture, Expect, FilerStore, Listed, Op, StoreError, StoreResult, prefix_end, split_for_key,
};
use crate::filer::limits::POSTGRES_CONNECTIONS_MAX;

const KIND: &str = "postgres";

/// The tables, created once: filers starting at once on a fresh database take a
/// transaction-scoped advisory lock first (PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
/// against a concurrent one: the loser fails on pg_type's unique index), so the first creates
/// them and the others find them.
const SCHEMA: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(7325143021);
CREATE TABLE IF NOT EXISTS kelp_entries (
    dir TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    meta BYTEA NOT NULL,
    PRIMARY KEY (dir, name)
);
CREATE TABLE IF NOT EXISTS kelp_records (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
COMMIT;
"#;

/// One connection with its prepared statements.
struct Connection {
    client: Client,
    statements: Statements,
}

struct Statements {
    get: Statement,
    list_after: Statement,
    list_from: Statement,
    upsert: Statement,
    insert_new: Statement,
    update_if: Statement,
    delete_any: Statement,
    delete_if: Statement,
    record_put: Statement,
    record_delete: Statement,
    records: Statement,
}

pub struct PostgresStore {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

fn backend(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::backend(KIND, operation, error)
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, String> {
        let mut connections = Vec::with_capacity(POSTGRES_CONNECTIONS_MAX);
        for index in 0..POSTGRES_CONNECTIONS_MAX {
            let connection = open_connection(url, index == 0)
                .await
                .map_err(|e| format!("--store {}: {e}", redact(url)))?;
            connections.push(Mutex::new(connection));
        }
        Ok(PostgresStore {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection if there is one, else the next in turn (waiting for it).
    async fn connection(&self) -> tokio::sync::MutexGuard<'_, Connection> {
        for connection in &self.connections {
            if let Ok(guard) = connection.try_lock() {
                return guard;
            }
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].lock().await
    }

    async fn apply_ops(&self, ops: Vec<Op>) -> StoreResult<()> {
        let mut guard = self.connection().await;
        let Connection { client, statements } = &mut *guard;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| backend("begin", e))?;
        for op in &ops {
            // On an error, dropping the transaction rolls it back.
            apply_one(&transaction, statements, op).await?;
        }
        transaction.commit().await.map_err(|e| backend("commit", e))
    }
}

/// One op inside the batch's transaction; Conflict when its expectation does not hold.
async fn apply_one(
    transaction: &tokio_postgres::Transaction<'_>,
    statements: &Statements,
    op: &Op,
) -> StoreResult<()> {
    match op {
        Op::Put {
            path,
            value,
            expect,
        } => put_entry(transaction, statements, path, value, expect).await?,
        Op::PutIfAbsent { path, value } => {
            let (dir, name) = split_for_key(path);
            transaction
                .execute(&statements.insert_new, &[&dir, &name, value])
                .await
                .map_err(|e| backend("put", e))?;
        }
        Op::Delete { path, expect } => delete_entry(transaction, statements, path, expect).await?,
        Op::PutRecord { key, value } => {
            transaction
                .execute(&statements.record_put, &[key, value])
                .await
                .map_err(|e| backend("put record", e))?;
        }
        Op::DeleteRecord { key } => {
            transaction
                .execute(&statements.record_delete, &[key])
                .await
                .map_err(|e| backend("delete record", e))?;
        }
    }
    Ok(())
}

fn conflict(path: &str) -> StoreError {
    StoreError::Conflict {
        path: path.to_string(),
    }
}

/// `Op::Put` inside the batch's transaction.
async fn put_entry(
    transaction: &tokio_postgres::Transaction<'_>,
    statements: &Statements,
    path: &str,
    value: &[u8],
    expect: &Expect,
) -> StoreResult<()> {
    let (dir, name) = split_for_key(path);
    let changed = match expect {
        Expect::Any => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&dir, &name, &value];
            transaction.execute(&statements.upsert, &params).await
        }
        Expect::Absent => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&dir, &name, &value];
            transaction.execute(&statements.insert_new, &params).await
        }
        Expect::Exactly(old) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&dir, &name, &value, old];
            transaction.execute(&statements.update_if, &params).await
        }
    }
    .map_err(|e| backend("put", e))?;
    if changed == 0 && *expect != Expect::Any {
        return Err(conflict(path));
    }
    Ok(())
}

/// `Op::Delete` inside the batch's transaction.
async fn delete_entry(
    transaction: &tokio_postgres::Transaction<'_>,
    statements: &Statements,
    path: &str,
    expect: &Expect,
) -> StoreResult<()> {
    let (dir, name) = split_for_key(path);
    let changed = match expect {
        Expect::Any => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&dir, &name];
            transaction.execute(&statements.delete_any, &params).await
        }
        Expect::Exactly(old) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&dir, &name, old];
            transaction.execute(&statements.delete_if, &params).await
        }
        Expect::Absent => return Err(conflict(path)),
    }
    .map_err(|e| backend("delete", e))?;
    if changed == 0 && *expect != Expect::Any {
        return Err(conflict(path));
    }
    Ok(())
}

impl FilerStore for PostgresStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let (dir, name) = split_for_key(path);
            let guard = self.connection().await;
            let row = guard
                .client
                .query_opt(&guard.statements.get, &[&dir, &name])
                .await
                .map_err(|e| backend("get", e))?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    fn list<'a>(
        &'a self,
        dir: &'a str,
        start: &'a str,
        inclusive: bool,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Listed>>> {
        Box::pin(async move {
            let guard = self.connection().await;
            let statement = if inclusive {
                &guard.statements.list_from
            } else {
                &guard.statements.list_after
            };
            let limit = limit as i64;
            let rows = guard
                .client
                .query(statement, &[&dir, &start, &limit])
                .await
                .map_err(|e| backend("list", e))?;
            Ok(rows
                .into_iter()
                .map(|row| Listed {
                    name: row.get(0),
                    value: row.get(1),
                })
                .collect())
        })
    }

    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            self.apply_ops(ops).await
        })
    }

    fn records<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<super::Records>> {
        Box::pin(async move {
            let guard = self.connection().await;
            let end = prefix_end(prefix);
            let limit = limit as i64;
            let rows = guard
                .client
                .query(&guard.statements.records, &[&prefix, &end, &limit])
                .await
                .map_err(|e| backend("records", e))?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }
}

async fn open_connection(url: &str, create_schema: bool) -> Result<Connection, String> {
    let (client, driver) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        if let Err(error) = driver.await {
            tracing::warn!("filer: postgres connection ended: {error}");
        }
    });
    if create_schema {
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| format!("create tables: {}", db_error_text(&e)))?;
    }
    let prepare = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .prepare(sql)
                .await
                .map_err(|e| format!("prepare {sql:?}: {e}"))
        }
    };
    let statements = Statements {
        get: prepare("SELECT meta FROM kelp_entries WHERE dir = $1 AND name = $2").await?,
        list_after: prepare(
            "SELECT name, meta FROM kelp_entries WHERE dir = $1 AND name > $2 \
             ORDER BY name LIMIT $3",
        )
        .await?,
        list_from: prepare(
            "SELECT name, meta FROM kelp_entries WHERE dir = $1 AND name >= $2 \
             ORDER BY name LIMIT $3",
        )
        .await?,
        upsert: prepare(
            "INSERT INTO kelp_entries (dir, name, meta) VALUES ($1, $2, $3) \
             ON CONFLICT (dir, name) DO UPDATE SET meta = EXCLUDED.meta",
        )
        .await?,
        insert_new: prepare(
            "INSERT INTO kelp_entries (dir, name, meta) VALUES ($1, $2, $3) \
             ON CONFLICT (dir, name) DO NOTHING",
        )
        .await?,
        update_if: prepare(
            "UPDATE kelp_entries SET meta = $3 WHERE dir = $1 AND name = $2 AND meta = $4",
        )
        .await?,
        delete_any: prepare("DELETE FROM kelp_entries WHERE dir = $1 AND name = $2").await?,
        delete_if: prepare("DELETE FROM kelp_entries WHERE dir = $1 AND name = $2 AND meta = $3")
            .await?,
        record_put: prepare(
            "INSERT INTO kelp_records (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .await?,
        record_delete: prepare("DELETE FROM kelp_records WHERE key = $1").await?,
        records: prepare(
            "SELECT key, value FROM kelp_records WHERE key >= $1 AND key < $2 \
             ORDER BY key LIMIT $3",
        )
        .await?,
    };
    Ok(Connection { client, statements })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A PostgreSQL error with the server's message: tokio-postgres's own text is only "db error".
fn db_error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{error}: {} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}
