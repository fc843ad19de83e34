//! The Redis store, shared by several filers. Each entry is one string key (`kelp:e:<path>`)
//! and each directory a sorted set of its names (`kelp:d:<dir>`, all scores 0), so a page of a
//! directory is one `ZRANGEBYLEX` at any size (not one value per directory). Records are a
//! hash (`kelp:rv`) with their keys in a sorted set (`kelp:rk`). A batch is one Lua script:
//! it checks every expectation, then applies every op, atomically.

use redis::aio::MultiplexedConnection;

use super::{
    BoxFuture, Expect, FilerStore, Listed, Op, StoreError, StoreResult, prefix_end, split_for_key,
};

const KIND: &str = "redis";
const ENTRY: &str = "kelp:e:";
const DIR: &str = "kelp:d:";
const RECORD_VALUES: &str = "kelp:rv";
const RECORD_KEYS: &str = "kelp:rk";

/// ARGV holds 7 slots per op: kind, path or key, dir, name, expectation, expected value, value.
const APPLY_SCRIPT: &str = r#"
local n = #ARGV / 7
for i = 0, n - 1 do
  local b = i * 7
  local kind, expect = ARGV[b + 1], ARGV[b + 5]
  if (kind == 'P' or kind == 'D') and expect ~= 'any' then
    local current = redis.call('GET', 'kelp:e:' .. ARGV[b + 2])
    if expect == 'absent' then
      if current then return ARGV[b + 2] end
    elseif (not current) or current ~= ARGV[b + 6] then
      return ARGV[b + 2]
    end
  end
end
for i = 0, n - 1 do
  local b = i * 7
  local kind = ARGV[b + 1]
  if kind == 'P' then
    redis.call('SET', 'kelp:e:' .. ARGV[b + 2], ARGV[b + 7])
    redis.call('ZADD', 'kelp:d:' .. ARGV[b + 3], 0, ARGV[b + 4])
  elseif kind == 'I' then
    if redis.call('SET', 'kelp:e:' .. ARGV[b + 2], ARGV[b + 7], 'NX') then
      redis.call('ZADD', 'kelp:d:' .. ARGV[b + 3], 0, ARGV[b + 4])
    end
  elseif kind == 'D' then
    redis.call('DEL', 'kelp:e:' .. ARGV[b + 2])
    redis.call('ZREM', 'kelp:d:' .. ARGV[b + 3], ARGV[b + 4])
  elseif kind == 'R' then
    redis.call('HSET', 'kelp:rv', ARGV[b + 2], ARGV[b + 7])
    redis.call('ZADD', 'kelp:rk', 0, ARGV[b + 2])
  elseif kind == 'X' then
    redis.call('HDEL', 'kelp:rv', ARGV[b + 2])
    redis.call('ZREM', 'kelp:rk', ARGV[b + 2])
  end
end
return ''
"#;

pub struct RedisStore {
    connection: MultiplexedConnection,
    apply_script: redis::Script,
}

fn backend(operation: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::backend(KIND, operation, error)
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--store {url}: {e}"))?;
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("--store {url}: connect: {e}"))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| format!("--store {url}: PING: {e}"))?;
        Ok(RedisStore {
            connection,
            apply_script: redis::Script::new(APPLY_SCRIPT),
        })
    }

    async fn apply_ops(&self, ops: Vec<Op>) -> StoreResult<()> {
        let mut invocation = self.apply_script.prepare_invoke();
        for op in &ops {
            push_op(&mut invocation, op);
        }
        let mut connection = self.connection.clone();
        let conflict: String = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| backend("apply", e))?;
        if conflict.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Conflict { path: conflict })
        }
    }

    async fn page(
        &self,
        dir: &str,
        start: &str,
        inclusive: bool,
        limit: usize,
    ) -> StoreResult<Vec<Listed>> {
        let from = match (start.is_empty(), inclusive) {
            (true, _) => "-".to_string(),
            (false, true) => format!("[{start}"),
            (false, false) => format!("({start}"),
        };
        let mut connection = self.connection.clone();
        let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(format!("{DIR}{dir}"))
            .arg(from)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("list", e))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names
            .iter()
            .map(|name| format!("{ENTRY}{}", super::super::path::join(dir, name)))
            .collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("list", e))?;
        // A name whose value is gone was deleted between the two reads: skip it.
        Ok(names
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| value.map(|value| Listed { name, value }))
            .collect())
    }

    async fn record_page(&self, prefix: &str, limit: usize) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let mut connection = self.connection.clone();
        let keys: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(RECORD_KEYS)
            .arg(format!("[{prefix}"))
            .arg(format!("({}", prefix_end(prefix)))
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("records", e))?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(RECORD_VALUES)
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(|e| backend("records", e))?;
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }
}

fn push_op(invocation: &mut redis::ScriptInvocation<'_>, op: &Op) {
    let (kind, path, expect, value): (&str, &str, &Expect, &[u8]) = match op {
        Op::Put {
            path,
            value,
            expect,
        } => ("P", path, expect, value),
        Op::PutIfAbsent { path, value } => ("I", path, &Expect::Any, value),
        Op::Delete { path, expect } => ("D", path, expect, &[]),
        Op::PutRecord { key, value } => ("R", key, &Expect::Any, value),
        Op::DeleteRecord { key } => ("X", key, &Expect::Any, &[]),
    };
    let (dir, name) = match op {
        Op::Put { .. } | Op::PutIfAbsent { .. } | Op::Delete { .. } => split_for_key(path),
        _ => ("", ""),
    };
    let (expect_kind, expected): (&str, &[u8]) = match expect {
        Expect::Any => ("any", &[]),
        Expect::Absent => ("absent", &[]),
        Expect::Exactly(bytes) => ("exact", bytes),
    };
    invocation
        .arg(kind)
        .arg(path)
        .arg(dir)
        .arg(name)
        .arg(expect_kind)
        .arg(expected)
        .arg(value);
}

impl FilerStore for RedisStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("GET")
                .arg(format!("{ENTRY}{path}"))
                .query_async(&mut connection)
                .await
                .map_err(|e| backend("get", e))
        })
    }

    fn list<'a>(
        &'a self,
        dir: &'a str,
        start: &'a str,
        inclusive: bool,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Listed>>> {
        Box::pin(self.page(dir, start, inclusive, limit))
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
        Box::pin(self.record_page(prefix, limit))
    }
}
