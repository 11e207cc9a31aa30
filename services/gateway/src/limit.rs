//! Per-client rate limits: a token bucket per client, in process memory or
//! in Redis so that every gateway replica spends from the same budget.
//!
//! Redis is a help, not a dependency of the shop: when it does not answer,
//! requests are let through (fail open), counted, and logged once per
//! outage, and `/readyz` says Redis is down.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use bazaar_platform::backoff::Backoff;
use bazaar_platform::tasks::{Shutdown, Tasks};
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::settings::RateLimit;

/// Whom a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// The `sub` of a verified access token.
    User(String),
    /// An address; IPv6 cut to its /64, which one client usually controls.
    Ip(IpAddr),
}

impl Client {
    /// The client at `ip`.
    pub fn ip(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                Self::Ip(IpAddr::V6(network.into()))
            }
            v4 => Self::Ip(v4),
        }
    }
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Over the limit: a token is back after this many seconds (at least 1).
    Deny {
        /// Whole seconds, for `Retry-After`.
        retry_after: u64,
    },
}

/// Whole seconds until `deficit` tokens have come back at `per_second`.
fn retry_after(deficit: f64, per_second: f64) -> u64 {
    let seconds = (deficit / per_second).ceil();
    // An absurdly slow rate must not overflow the header.
    if seconds.is_finite() && seconds >= 1.0 {
        seconds.min(86_400.0) as u64
    } else {
        1
    }
}

/// The limiter the gateway runs with. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Limiter {
    /// No limit.
    Off,
    /// Buckets in this process.
    Memory(Arc<Memory>),
    /// Buckets in Redis, shared by every gateway with the same prefix.
    Redis(Arc<Shared>),
}

impl Limiter {
    /// Takes a token from `client`'s bucket, if there is one.
    pub async fn check(&self, client: &Client) -> Decision {
        match self {
            Self::Off => Decision::Allow,
            Self::Memory(memory) => memory.check(client, Instant::now()),
            Self::Redis(shared) => shared.check(client).await,
        }
    }

    /// Whether requests are limited at all (if not, nobody needs a key).
    pub fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// Most clients kept in memory at once; past it, idle buckets (which are
/// full, so forgetting them changes nothing) are dropped first.
const MAX_CLIENTS: usize = 100_000;
/// Independent locks, so concurrent requests rarely wait for each other.
const SHARDS: usize = 16;

/// Token buckets in process memory, bounded in size.
pub struct Memory {
    limit: RateLimit,
    shards: Box<[Mutex<HashMap<Client, Bucket>>]>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Memory {
    // Not the buckets: they name clients' addresses and users.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, limit: RateLimit) {
        self.tokens = self.tokens_at(now, limit);
        self.at = now;
    }

    /// Tokens the bucket would hold at `now`, without changing it.
    fn tokens_at(&self, now: Instant, limit: RateLimit) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst))
    }

    fn is_full(&self, now: Instant, limit: RateLimit) -> bool {
        self.tokens_at(now, limit) >= f64::from(limit.burst)
    }

    fn take(&mut self, now: Instant, limit: RateLimit) -> Decision {
        self.refill(now, limit);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: retry_after(1.0 - self.tokens, limit.per_second),
            }
        }
    }
}

impl Memory {
    /// Buckets of `limit`, for at most [`MAX_CLIENTS`] clients at once.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_CLIENTS)
    }

    fn with_capacity(limit: RateLimit, clients: usize) -> Self {
        Self {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: clients.div_ceil(SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a token from `client`'s bucket at `now`.
    pub fn check(&self, client: &Client, now: Instant) -> Decision {
        let shard = (self.hasher.hash_one(client) as usize) % self.shards.len();
        let mut buckets = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(client) {
            return bucket.take(now, self.limit);
        }
        if buckets.len() >= self.per_shard {
            self.evict(&mut buckets, now);
        }
        let mut bucket = Bucket {
            tokens: f64::from(self.limit.burst),
            at: now,
        };
        let decision = bucket.take(now, self.limit);
        buckets.insert(client.clone(), bucket);
        decision
    }

    /// Makes room for one more bucket. Linear in the shard, but only paid
    /// when a shard is full, and then it usually frees many places at once.
    fn evict(&self, buckets: &mut HashMap<Client, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| !bucket.is_full(now, self.limit));
        if buckets.len() < self.per_shard {
            return;
        }
        // Every client is busy: forget the one with the most tokens, which
        // loses the least. A client that spent its budget is kept, so a
        // flood of new addresses cannot hand it a fresh bucket.
        if let Some(fullest) = buckets
            .iter()
            .max_by(|(_, a), (_, b)| {
                a.tokens_at(now, self.limit)
                    .total_cmp(&b.tokens_at(now, self.limit))
            })
            .map(|(client, _)| client.clone())
        {
            buckets.remove(&fullest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// An atomic token bucket: refill by Redis's own clock (so replicas with
/// skewed clocks agree), take a token if there is one, and let the key
/// expire once the bucket would be full again (a missing key is a full
/// bucket). Returns `{allowed, milliseconds until a token is back}`.
const TOKEN_BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {allowed, wait}
";

/// How long one Redis call may take before the request goes on without it.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// After a failed call, how long requests skip Redis before trying it again,
/// so an outage costs each request nothing rather than a timeout.
const OUTAGE_PAUSE: Duration = Duration::from_secs(1);

/// Token buckets in Redis.
pub struct Shared {
    limit: RateLimit,
    prefix: String,
    script: redis::Script,
    connection: OnceLock<ConnectionManager>,
    /// Nanoseconds after `epoch` until which Redis is skipped; 0 while it answers.
    down_until: AtomicU64,
    epoch: Instant,
    fail_open: Counter,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limit", &self.limit)
            .field("prefix", &self.prefix)
            .field("connected", &self.connection.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Buckets of `limit` under `prefix` in the Redis at `client`.
    /// `fail_open` counts requests let through unchecked.
    ///
    /// Waits briefly for a first connection, so a gateway whose Redis is up
    /// enforces limits from its first request; if Redis is down it starts
    /// anyway, failing open, and keeps connecting in the background (a task
    /// of `tasks`, so it stops with the server).
    pub async fn connect(
        client: redis::Client,
        limit: RateLimit,
        prefix: String,
        fail_open: Counter,
        tasks: &Tasks,
    ) -> Arc<Self> {
        let shared = Arc::new(Self {
            limit,
            prefix,
            script: redis::Script::new(TOKEN_BUCKET),
            connection: OnceLock::new(),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            fail_open,
        });
        let first = tokio::time::timeout(
            FIRST_CONNECT,
            ConnectionManager::new_with_config(client.clone(), manager_config()),
        )
        .await;
        match first {
            Ok(Ok(connection)) => {
                let _ = shared.connection.set(connection);
            }
            Ok(Err(error)) => {
                warn_unreachable(&error.to_string());
                let weak = Arc::downgrade(&shared);
                tasks.spawn("redis reconnect", |stop| reconnect(weak, client, stop));
            }
            Err(_) => {
                warn_unreachable("no answer in time");
                let weak = Arc::downgrade(&shared);
                tasks.spawn("redis reconnect", |stop| reconnect(weak, client, stop));
            }
        }
        shared
    }

    async fn check(&self, client: &Client) -> Decision {
        let now = Instant::now();
        let skip_until = self.down_until.load(Ordering::Relaxed);
        if skip_until != 0 && self.nanos(now) < skip_until {
            return self.let_through();
        }
        let Some(connection) = self.connection.get() else {
            return self.let_through();
        };
        let mut connection = connection.clone();
        let key = match client {
            Client::User(sub) => format!("{}:user:{sub}", self.prefix),
            Client::Ip(ip) => format!("{}:ip:{ip}", self.prefix),
        };
        let mut call = self.script.key(key);
        call.arg(self.limit.per_second).arg(self.limit.burst);
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            call.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok((allowed, wait_ms))) => {
                if self.down_until.swap(0, Ordering::Relaxed) != 0 {
                    tracing::info!("Redis answers again: rate limits apply again");
                }
                if allowed == 1 {
                    Decision::Allow
                } else {
                    Decision::Deny {
                        retry_after: retry_after(wait_ms as f64 / 1000.0, 1.0),
                    }
                }
            }
            Ok(Err(error)) => self.outage(now, &error.to_string()),
            Err(_) => self.outage(now, "no answer in time"),
        }
    }

    fn outage(&self, now: Instant, error: &str) -> Decision {
        let until = self.nanos(now + OUTAGE_PAUSE).max(1);
        if self.down_until.swap(until, Ordering::Relaxed) == 0 {
            tracing::warn!(
                error,
                "Redis did not answer the rate limiter; letting requests through until it does"
            );
        }
        self.let_through()
    }

    fn let_through(&self) -> Decision {
        self.fail_open.inc();
        Decision::Allow
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// How long a starting gateway waits for Redis before it goes on without.
const FIRST_CONNECT: Duration = Duration::from_secs(2);

fn manager_config() -> ConnectionManagerConfig {
    // Short: a request never waits on these (its call has its own timeout),
    // but a quick reconnect shortens the time limits are not enforced.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_number_of_retries(1)
        .set_factor(100)
        .set_max_delay(1000)
}

fn warn_unreachable(error: &str) {
    tracing::warn!(
        error,
        "cannot connect to Redis for rate limits; letting requests through until it answers"
    );
}

/// Waits between attempts at the first connection to Redis.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Keeps trying to make the first connection, with backoff, until it works,
/// the limiter is gone or the server stops; the connection manager
/// reconnects by itself after.
async fn reconnect(
    shared: Weak<Shared>,
    client: redis::Client,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let mut pause = RECONNECT.base;
    loop {
        let connect = async {
            tokio::time::sleep(pause).await;
            ConnectionManager::new_with_config(client.clone(), manager_config()).await
        };
        let Some(attempt) = stop.unless_requested(connect).await else {
            return Ok(());
        };
        pause = RECONNECT.after(pause);
        let Some(limiter) = shared.upgrade() else {
            return Ok(());
        };
        if let Ok(connection) = attempt {
            let _ = limiter.connection.set(connection);
            tracing::info!("connected to Redis: rate limits apply");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3,
    };

    fn ip(n: u8) -> Client {
        Client::ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let memory = Memory::new(LIMIT);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(memory.check(&ip(1), now), Decision::Allow);
        }
        assert_eq!(memory.check(&ip(1), now), Decision::Deny { retry_after: 1 });
        assert_eq!(
            memory.check(&ip(2), now),
            Decision::Allow,
            "buckets are per client"
        );
        // Two tokens a second: after half a second exactly one is back.
        let later = now + Duration::from_millis(500);
        assert_eq!(memory.check(&ip(1), later), Decision::Allow);
        assert!(matches!(memory.check(&ip(1), later), Decision::Deny { .. }));
        // A long pause refills to the burst, not beyond it.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(memory.check(&ip(1), much_later), Decision::Allow);
        }
        assert!(matches!(
            memory.check(&ip(1), much_later),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after(1.0, 50.0), 1);
        assert_eq!(retry_after(1.0, 0.1), 10);
        assert_eq!(retry_after(0.25, 0.1), 3);
        assert_eq!(retry_after(1.0, 1e-12), 86_400);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_and_keeps_clients_that_spent_their_budget() {
        let memory = Memory::with_capacity(LIMIT, SHARDS * 4);
        let start = Instant::now();
        let spender = Client::User("spender".into());
        for _ in 0..3 {
            memory.check(&spender, start);
        }
        // A flood of new clients, some of them long idle by the end.
        for n in 0..=255 {
            let at = start + Duration::from_millis(n);
            memory.check(&ip(n as u8), at);
            memory.check(&Client::User(format!("u{n}")), at);
            assert!(memory.len() <= SHARDS * 4, "{} buckets", memory.len());
        }
        let end = start + Duration::from_millis(256);
        assert!(
            matches!(memory.check(&spender, end), Decision::Deny { .. }),
            "the spender did not get a fresh bucket"
        );
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::ip(a.into()), Client::ip(b.into()));
        assert_ne!(Client::ip(a.into()), Client::ip(c.into()));
        let mapped: Ipv6Addr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Client::ip(mapped.into()), ip(1));
    }
}
