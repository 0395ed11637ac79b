//! Quota leases from Redis (enforcer/core/src/lease.rs does the accounting).
//!
//! One Lua script call takes the leases of every counter a request needs,
//! atomically: it reads Redis's clock (`TIME`, so replicas' clocks do not
//! matter), finds each counter's window, grants what is left up to the lease
//! asked for, and sets the key to expire 5 s after the window ends. Keys are
//! `<keyPrefix><Choreo Connect's key>:<window start, ms>`. The script builds
//! key names from the clock, so it needs one Redis node, not Redis Cluster
//! (Sentinel discovery and TLS are not supported yet).
//!
//! The connection is a redis-rs `ConnectionManager` (one multiplexed
//! connection, reconnecting); it is opened on first use, so an enforcer
//! starts and serves (by the failure mode) while Redis is away.

use std::sync::Arc;

use enforcer_core::lease::{LeaseReply, LeaseRequest, LeaseStore, StoreError};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Mutex;

const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local win = tonumber(ARGV[3 * i - 1])
  local want = tonumber(ARGV[3 * i])
  local start = now - (now % win)
  local k = key .. ':' .. start
  local cur = tonumber(redis.call('GET', k) or '0')
  local grant = math.min(want, limit - cur)
  if grant > 0 then
    cur = redis.call('INCRBY', k, grant)
    redis.call('PEXPIREAT', k, start + win + 5000)
  else
    grant = 0
  end
  out[#out + 1] = grant
  out[#out + 1] = cur
  out[#out + 1] = start + win
end
return out
";

/// Leases from one Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<redis::aio::ConnectionManager>>,
    script: redis::Script,
    prefix: String,
}

impl RedisStore {
    /// A store for `url` (`redis://`), keys under `prefix`.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<RedisStore>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("redis url: {e}")))?;
        Ok(Arc::new(RedisStore {
            client,
            conn: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.into(),
        }))
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let cfg = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1);
        let c = self
            .client
            .get_connection_manager_with_config(cfg)
            .await
            .map_err(|e| StoreError(format!("connecting: {e}")))?;
        *held = Some(c.clone());
        Ok(c)
    }
}

impl LeaseStore for RedisStore {
    fn take<'a>(&'a self, reqs: &'a [LeaseRequest]) -> BoxFuture<'a, Result<Vec<LeaseReply>, StoreError>> {
        async move {
            let mut conn = self.connection().await?;
            let mut call = self.script.prepare_invoke();
            for r in reqs {
                call.key(format!("{}{}", self.prefix, r.key));
                call.arg(r.limit).arg(r.window_secs.saturating_mul(1000)).arg(r.want);
            }
            let out: Vec<i64> = call.invoke_async(&mut conn).await.map_err(|e| StoreError(e.to_string()))?;
            if out.len() != reqs.len() * 3 {
                return Err(StoreError(format!(
                    "the script answered {} values for {} counters",
                    out.len(),
                    reqs.len()
                )));
            }
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(out
                .chunks_exact(3)
                .map(|c| LeaseReply { granted: n(c[0]), counter: n(c[1]), window_end: n(c[2]) / 1000 })
                .collect())
        }
        .boxed()
    }
}
