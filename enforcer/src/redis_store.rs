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
    conn: Arc<Mutex<Option<redis::aio::ConnectionManager>>>,
    /// A connection is being opened in the background.
    connecting: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when an attempt to connect ends.
    attempted: Arc<tokio::sync::Notify>,
    script: redis::Script,
    prefix: String,
}

impl RedisStore {
    /// A store for `url` (`redis://`), keys under `prefix`.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<RedisStore>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("redis url: {e}")))?;
        let store = Arc::new(RedisStore {
            client,
            conn: Arc::new(Mutex::new(None)),
            connecting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            attempted: Arc::new(tokio::sync::Notify::new()),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.into(),
        });
        // Connect at once, so that the first requests find the connection open.
        if tokio::runtime::Handle::try_current().is_ok() {
            store.start_connecting();
        }
        Ok(store)
    }

    /// Opens a connection in the background unless one is being opened (a
    /// connect and handshake may take longer than one request's deadline;
    /// the attempt goes on after the request has been decided without it).
    fn start_connecting(&self) {
        if self.connecting.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let (client, conn) = (self.client.clone(), Arc::clone(&self.conn));
        let (connecting, attempted) = (Arc::clone(&self.connecting), Arc::clone(&self.attempted));
        tokio::spawn(async move {
            let cfg = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1);
            match client.get_connection_manager_with_config(cfg).await {
                Ok(c) => *conn.lock().await = Some(c),
                Err(e) => tracing::debug!(error = %e, "connecting to Redis failed"),
            }
            connecting.store(false, std::sync::atomic::Ordering::Release);
            attempted.notify_waiters();
        });
    }

    /// The connection: the open one, or the one being opened (the caller's
    /// deadline bounds the wait).
    async fn connection(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        let attempt = self.attempted.notified();
        tokio::pin!(attempt);
        attempt.as_mut().enable();
        if let Some(c) = self.conn.lock().await.as_ref() {
            return Ok(c.clone());
        }
        self.start_connecting();
        attempt.await;
        self.conn.lock().await.clone().ok_or_else(|| StoreError("cannot connect to Redis".into()))
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
