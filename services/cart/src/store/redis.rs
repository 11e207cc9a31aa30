//! Carts in Redis: one hash per cart, at `<prefix><user id>`.
//!
//! ```text
//! HGETALL bazaar:cart:0197…   →   "#seq"    "3"
//!                                 "<product>" "1:2"    position 1, quantity 2
//!                                 "<product>" "3:1"    position 3, quantity 1
//! ```
//!
//! `#seq` (never a product id) is the last position handed out; lines are
//! listed by position, which is the order they were first added in. One key
//! per cart keeps every change a single-key operation: each write is one Lua
//! script (run atomically by Redis), so the 50-line limit and the
//! only-if-not-raised removal of `ClearCart` hold whatever runs beside
//! them, and nothing needs a cluster hash tag. A cart expires
//! [`REDIS_TTL`] after its last change; a cart whose last line goes is
//! deleted.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use super::{CartStore, Put, StoreError};
use crate::domain::{Line, MAX_LINES, Quantity, Taken};

/// How long a cart stays in Redis after its last change: 30 days.
pub const REDIS_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The hash field that holds the last position handed out.
const SEQ: &str = "#seq";

/// Shared by the scripts below: deletes a cart left without lines (only
/// `#seq`, or nothing), else restarts its time to live.
const SETTLE: &str = r"
local function settle(key, ttl)
  if redis.call('HLEN', key) <= redis.call('HEXISTS', key, '#seq') then
    redis.call('DEL', key)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
";

/// KEYS[1] the cart; ARGV: product, quantity, most lines, seconds to live.
/// Returns `{'full'}`, or `{'ok', field, value, …}` (the cart after).
const PUT: &str = r"
local line = redis.call('HGET', KEYS[1], ARGV[1])
local position
if line then
  position = string.match(line, '^(%d+):')
else
  local lines = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], '#seq')
  if lines >= tonumber(ARGV[3]) then
    return {'full'}
  end
  position = redis.call('HINCRBY', KEYS[1], '#seq', 1)
end
redis.call('HSET', KEYS[1], ARGV[1], position .. ':' .. ARGV[2])
settle(KEYS[1], ARGV[4])
local cart = redis.call('HGETALL', KEYS[1])
table.insert(cart, 1, 'ok')
return cart
";

/// KEYS[1] the cart; ARGV: product, seconds to live. Returns the cart after.
const REMOVE: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  settle(KEYS[1], ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
";

/// KEYS[1] the cart; ARGV: seconds to live, then pairs of product and the
/// most units whose line goes. Returns how many lines went.
const REMOVE_TAKEN: &str = r"
local removed = 0
for i = 2, #ARGV, 2 do
  local line = redis.call('HGET', KEYS[1], ARGV[i])
  if line and tonumber(string.match(line, ':(%d+)$')) <= tonumber(ARGV[i + 1]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
if removed > 0 then
  settle(KEYS[1], ARGV[1])
end
return removed
";

/// How long one Redis call may take; a hung server is an error, not a
/// hung request.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Carts in Redis, under a key prefix.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    put: redis::Script,
    remove: redis::Script,
    remove_taken: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{SETTLE}{body}"))
}

impl RedisStore {
    /// Connects to the Redis at `url`, keeping carts under `prefix`. After
    /// this first connection, the connection is re-established by itself
    /// whenever it breaks.
    ///
    /// # Errors
    /// When Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            prefix: prefix.into(),
            put: script(PUT),
            remove: script(REMOVE),
            remove_taken: script(REMOVE_TAKEN),
        })
    }

    /// The key of `user`'s cart.
    pub fn key(&self, user: Uuid) -> String {
        format!("{}{user}", self.prefix)
    }

    /// Round-trips a `PING` over the store's own connection: the readiness
    /// check (it also proves the credentials work).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(())
    }

    fn ttl() -> u64 {
        REDIS_TTL.as_secs()
    }
}

/// The lines of a cart from its hash's fields and values (as `HGETALL`
/// answers them), by position.
fn parse(flat: &[String]) -> Result<Vec<Line>, StoreError> {
    let mut lines = Vec::with_capacity(flat.len() / 2);
    for pair in flat.chunks(2) {
        let [field, value] = pair else {
            return Err(StoreError::Corrupt("an odd number of hash items".into()));
        };
        if field == SEQ {
            continue;
        }
        let corrupt = || StoreError::Corrupt(format!("line {field:?} = {value:?}"));
        let product = Uuid::parse_str(field).map_err(|_| corrupt())?;
        let (position, quantity) = value.split_once(':').ok_or_else(corrupt)?;
        let position: u64 = position.parse().map_err(|_| corrupt())?;
        let quantity = quantity
            .parse()
            .ok()
            .and_then(Quantity::new)
            .ok_or_else(corrupt)?;
        lines.push((position, Line::new(product, quantity)));
    }
    lines.sort_by_key(|(position, _)| *position);
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

#[async_trait::async_trait]
impl CartStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn lines(&self, user: Uuid) -> Result<Vec<Line>, StoreError> {
        let mut connection = self.connection.clone();
        let flat: Vec<String> = redis::cmd("HGETALL")
            .arg(self.key(user))
            .query_async(&mut connection)
            .await?;
        parse(&flat)
    }

    async fn put(&self, user: Uuid, line: Line) -> Result<Put, StoreError> {
        let mut connection = self.connection.clone();
        let answer: Vec<String> = self
            .put
            .key(self.key(user))
            .arg(line.product_id.to_string())
            .arg(line.quantity.get())
            .arg(MAX_LINES)
            .arg(Self::ttl())
            .invoke_async(&mut connection)
            .await?;
        match answer.split_first() {
            Some((status, cart)) if status == "ok" => Ok(Put::Done(parse(cart)?)),
            Some((status, _)) if status == "full" => Ok(Put::Full),
            _ => Err(StoreError::Corrupt(format!(
                "the put script answered {answer:?}"
            ))),
        }
    }

    async fn remove(&self, user: Uuid, product: Uuid) -> Result<Vec<Line>, StoreError> {
        let mut connection = self.connection.clone();
        let flat: Vec<String> = self
            .remove
            .key(self.key(user))
            .arg(product.to_string())
            .arg(Self::ttl())
            .invoke_async(&mut connection)
            .await?;
        parse(&flat)
    }

    async fn clear(&self, user: Uuid) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(self.key(user))
            .query_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    async fn remove_taken(&self, user: Uuid, taken: &Taken) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut call = self.remove_taken.key(self.key(user));
        call.arg(Self::ttl());
        for (product, most) in taken.iter() {
            call.arg(product.to_string()).arg(most);
        }
        call.invoke_async::<i64>(&mut connection).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_by_position_without_the_sequence() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let flat: Vec<String> = [
            b.to_string().as_str(),
            "10:1",
            SEQ,
            "10",
            a.to_string().as_str(),
            "2:99",
        ]
        .map(str::to_owned)
        .into();
        let lines = parse(&flat).unwrap();
        let got: Vec<(Uuid, i64)> = lines
            .iter()
            .map(|l| (l.product_id, l.quantity.get()))
            .collect();
        assert_eq!(got, vec![(a, 99), (b, 1)]);
    }

    #[test]
    fn unreadable_lines_are_errors() {
        let a = Uuid::now_v7().to_string();
        for bad in [
            vec![a.clone(), "1".to_owned()],
            vec![a.clone(), "x:1".to_owned()],
            vec![a.clone(), "1:0".to_owned()],
            vec!["nope".to_owned(), "1:1".to_owned()],
            vec![a],
        ] {
            assert!(
                matches!(parse(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
