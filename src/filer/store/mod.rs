//! Where the filer keeps its entries: one record per entry, keyed by (parent directory, name),
//! so listing a page of a directory is a range read of that directory's keys at any size.
//!
//! Three implementations of [`FilerStore`]: [`redb_store`] (embedded, the default: one file
//! under the data directory), [`redis_store`] and [`postgres_store`] (shared by several
//! filers). Besides entries a store keeps small named records (pending chunk deletions,
//! open file-id leases): they change in the same atomic batch as the entries, so a crash
//! never loses the note that chunks must be deleted.
//!
//! Every store passes the same conformance suite ([`conformance`]).

pub mod postgres_store;
pub mod redb_store;
pub mod redis_store;

#[cfg(test)]
pub mod conformance;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An operation's expectation did not hold: another writer changed the entry first.
    /// Nothing of the batch was applied.
    Conflict { path: String },
    /// The backend failed; names the store and the operation.
    Backend {
        store: &'static str,
        operation: &'static str,
        message: String,
    },
}

impl StoreError {
    pub fn backend(store: &'static str, operation: &'static str, error: impl fmt::Display) -> Self {
        StoreError::Backend {
            store,
            operation,
            message: error.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict { path } => {
                write!(f, "{path} was changed by another writer meanwhile")
            }
            StoreError::Backend {
                store,
                operation,
                message,
            } => write!(f, "{store} store: {operation}: {message}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What an operation expects at its path before it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// Nothing.
    Absent,
    /// Exactly this stored value (the one the writer read).
    Exactly(Vec<u8>),
}

/// One change of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` at `path` if `expect` holds.
    Put {
        path: String,
        value: Vec<u8>,
        expect: Expect,
    },
    /// Store `value` at `path` unless something is there (never a conflict): implicit
    /// directories.
    PutIfAbsent { path: String, value: Vec<u8> },
    /// Remove `path` if `expect` holds (removing nothing with `Expect::Any` is no error).
    Delete { path: String, expect: Expect },
    /// Set a named record.
    PutRecord { key: String, value: Vec<u8> },
    /// Remove a named record (no error when absent).
    DeleteRecord { key: String },
}

/// Named records found by prefix: (key, value) in key order.
pub type Records = Vec<(String, Vec<u8>)>;

/// One entry of a directory page: its name and stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub value: Vec<u8>,
}

/// The operations every store offers. Values are opaque bytes (encoded entries); paths are
/// clean absolute paths ([`super::path`]).
pub trait FilerStore: Send + Sync {
    /// `redb`, `redis` or `postgres`.
    fn kind(&self) -> &'static str;

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;

    /// Up to `limit` entries of directory `dir` in name order, from `start` (excluded
    /// unless `inclusive`; "" starts at the beginning).
    fn list<'a>(
        &'a self,
        dir: &'a str,
        start: &'a str,
        inclusive: bool,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Listed>>>;

    /// Apply every op, or none of them (`StoreError::Conflict` names the first failed
    /// expectation). Durable when it returns Ok.
    fn apply(&self, ops: Vec<Op>) -> BoxFuture<'_, StoreResult<()>>;

    /// Records whose key starts with `prefix`, in key order, up to `limit`.
    fn records<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, StoreResult<Records>>;
}

/// Open the store a `--store` flag names: `redb` (a file under `dir`), `redis://...` or
/// `postgres://...`.
pub async fn open(spec: &str, dir: &Path) -> Result<Arc<dyn FilerStore>, String> {
    if spec == "redb" || spec.is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create --dir {}: {e}", dir.display()))?;
        let file = dir.join("filer.redb");
        let store = redb_store::RedbStore::open(&file)?;
        return Ok(Arc::new(store));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        let store = redis_store::RedisStore::connect(spec).await?;
        return Ok(Arc::new(store));
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let store = postgres_store::PostgresStore::connect(spec).await?;
        return Ok(Arc::new(store));
    }
    Err(format!(
        "--store {spec:?}: expected redb, redis://HOST:PORT[/DB] or postgres://USER@HOST:PORT/DB"
    ))
}

/// The key of an entry in stores that keep one ordered key space: parent directory, NUL,
/// name. All entries of a directory are adjacent and in name order.
pub fn entry_key(dir: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(dir.len() + 1 + name.len());
    key.extend_from_slice(dir.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The (parent, name) pair a path is stored under. The root is implicit and has no record:
/// stores are never asked for it.
pub fn split_for_key(path: &str) -> (&str, &str) {
    super::path::split(path).expect("the root has no stored entry")
}

/// The smallest string greater than every string starting with `prefix` (ASCII prefixes).
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    end.push(char::MAX);
    end
}

#[cfg(test)]
#[path = "../../../tests/filer_support/servers.rs"]
mod servers;

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    // Proves the embedded store has every behaviour of the store conformance suite.
    #[test]
    fn redb_store_conformance() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = open("redb", dir.path()).await.unwrap();
            conformance::run_all(store).await;
        });
    }

    // Proves an acknowledged batch of the embedded store is there after reopening the file.
    #[test]
    fn redb_store_keeps_commits_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let store = open("redb", dir.path()).await.unwrap();
            let op = Op::Put {
                path: "/k/a".into(),
                value: b"v".to_vec(),
                expect: Expect::Absent,
            };
            store.apply(vec![op]).await.unwrap();
        });
        runtime().block_on(async {
            let store = open("redb", dir.path()).await.unwrap();
            assert_eq!(store.get("/k/a").await.unwrap(), Some(b"v".to_vec()));
        });
    }

    // Proves the Redis store passes the conformance suite against a real redis-server.
    #[test]
    #[ignore = "needs redis-server: test.sh runs it when installed (apt-get install redis-server)"]
    fn redis_store_conformance_needs_redis() {
        let server = servers::RedisServer::start();
        runtime().block_on(async {
            let store = open(&server.url(), Path::new("/nonexistent"))
                .await
                .unwrap();
            conformance::run_all(store).await;
        });
    }

    // Proves the PostgreSQL store passes the conformance suite against a real server.
    #[test]
    #[ignore = "needs PostgreSQL: test.sh runs it when installed (apt-get install postgresql)"]
    fn postgres_store_conformance_needs_postgres() {
        let server = servers::PostgresServer::start();
        runtime().block_on(async {
            let store = open(&server.url(), Path::new("/nonexistent"))
                .await
                .unwrap();
            conformance::run_all(store).await;
        });
    }

    // Proves a bad --store names the accepted forms.
    #[test]
    fn unknown_store_is_refused() {
        let error = runtime()
            .block_on(open("mysql://x", Path::new("/tmp")))
            .err()
            .unwrap();
        assert!(
            error.contains("redis://") && error.contains("postgres://"),
            "{error}"
        );
    }
}
