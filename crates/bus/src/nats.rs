//! The NATS JetStream broker: the production adapter of the [`Broker`]
//! contract.
//!
//! * One stream (e.g. `BAZAAR`) holds every topic, under the subjects
//!   `<prefix>.>` where the prefix is the stream name in lower case, so
//!   several streams on one server never overlap. Topic `t` travels on
//!   subject `<prefix>.<t>`.
//! * The stream keeps everything (limits retention, no age limit), so a new
//!   consumer group replays history, and drops a republished event id within
//!   its duplicate window (`Nats-Msg-Id` = envelope id).
//! * A consumer group is one durable pull consumer per (group, topic): server
//!   2.9 allows one filter subject per consumer. Every process that joins
//!   the group pulls from the same durables, so they compete for events.
//! * A [`Consumer`] pulls on demand only: pull requests go out while
//!   `next` is asked for events, sized by the backlog the server reports
//!   (one event when idle, a batch when behind, never more than the member
//!   handles within a quarter of `ack_wait`), and all of them answer on
//!   one inbox subscription, which merges the group's topics. An idle member
//!   therefore holds no events another member could take.
//! * Redelivery is the server's: an event nacked, or not acked within
//!   `ack_wait` (its consumer died), goes to the next pull request of the
//!   group. Dead-lettering stays in [`crate::subscription::process`].

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{BatchConfig, Config as PullConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, ConnectOptions, HeaderMap, ServerAddr, StatusCode, Subject, Subscriber};
use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::time::Instant;

use crate::{Acker, Broker, BusError, Consumer, Delivery, Envelope};

/// Gives up on an unreachable server after this long, at connect and on
/// each JetStream API call or publish ack; async-nats keeps reconnecting
/// in the background either way.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long `ping` waits for the server's answer: readiness probes are
/// short, and a server that slow is not ready.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a delivery may stay unacked before the server gives it to
/// another member of the group (that consumer is presumed dead).
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// A republished event (the relay crashed between publish and delete) is
/// dropped by the server if it comes back within this window; later copies
/// are absorbed by the consumers' inboxes. The server tracks every id of
/// the window, so it is kept at the server's usual two minutes.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Most events one pull request asks for: under a backlog batches save a
/// round trip per event, but every event pulled waits in this member's
/// buffer with its `ack_wait` running, out of the other members' reach.
const MAX_BATCH: usize = 32;
/// Pull requests live as long as the caller's `wait`, within these bounds:
/// not so short that polling floods the server with requests, not so long
/// that a lost request (server restart) goes unnoticed for long.
const MIN_EXPIRES: Duration = Duration::from_millis(100);
const MAX_EXPIRES: Duration = Duration::from_secs(30);
/// A pull request whose expiry notice (408) has not come this long after it
/// expired was lost with its connection; another is sent.
const EXPIRY_GRACE: Duration = Duration::from_secs(1);
/// Pause before asking again after the server refused a pull request (409),
/// so a persistent refusal does not become a busy loop.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// Durable names longer than this are shortened (the server stores each
/// consumer in a directory named after it).
const MAX_DURABLE: usize = 120;

/// A [`Broker`] over a NATS JetStream stream.
#[derive(Clone)]
pub struct NatsBroker {
    client: Client,
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
    prefix: String,
    ack_wait: Duration,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("stream", &self.stream.cached_info().config.name)
            .field("prefix", &self.prefix)
            .field("ack_wait", &self.ack_wait)
            .finish_non_exhaustive()
    }
}

impl NatsBroker {
    /// Connects to the server(s) at `url` (e.g. `nats://127.0.0.1:4222`,
    /// comma-separated for a cluster) and creates stream `stream` if it
    /// does not exist yet. Fails if the server cannot be reached now; once
    /// connected, lost connections are re-established in the background.
    pub async fn connect(url: &str, stream: &str) -> Result<Self, BusError> {
        let prefix = subject_prefix(stream)?;
        let servers = url
            .split(',')
            .map(|u| u.trim().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable(format!("invalid NATS URL {url:?}"), e))?;
        let client = ConnectOptions::new()
            .name("bazaar")
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            // Never give up on a server once reached: the service keeps
            // answering /readyz with an error meanwhile.
            .max_reconnects(None)
            .connect(servers)
            .await
            .map_err(|e| unavailable(format!("cannot connect to NATS at {url}"), e))?;
        let context = ContextBuilder::new()
            .timeout(TIMEOUT)
            .ack_timeout(TIMEOUT)
            .build(client.clone());
        let config = StreamConfig {
            name: stream.to_owned(),
            subjects: vec![format!("{prefix}.>")],
            storage: StorageType::File,
            // Keep everything: a group created later replays from the start.
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            max_age: Duration::ZERO,
            duplicate_window: DUPLICATE_WINDOW,
            ..StreamConfig::default()
        };
        let stream = context
            .get_or_create_stream(config)
            .await
            .map_err(|e| unavailable(format!("cannot create or open stream {stream}"), e))?;
        Ok(Self {
            client,
            context,
            stream,
            prefix,
            ack_wait: DEFAULT_ACK_WAIT,
        })
    }

    /// Changes how long a delivery may stay unacked before another member
    /// of the group gets it. Applies to consumer groups created from now
    /// on: an existing group keeps the value it was created with.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The subject topic `topic` travels on.
    pub fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    async fn pull_consumer(&self, group: &str, topic: &str) -> Result<PullConsumer, BusError> {
        let name = durable_name(group, topic);
        let config = PullConfig {
            durable_name: Some(name.clone()),
            description: Some(format!("group {group}, topic {topic}")),
            filter_subject: self.subject(topic),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: self.ack_wait,
            // Unlimited: the subscription runtime dead-letters after its
            // own count, the same for both adapters.
            max_deliver: -1,
            ..PullConfig::default()
        };
        // Get first, create if missing: members joining together all send
        // the same config, which the server accepts for an existing durable.
        self.stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|e| unavailable(format!("cannot join group {group} on {topic}"), e))
    }

    /// Events stored on `subject`, for the lag of a group not created yet.
    async fn stored(&self, subject: &str) -> Result<u64, BusError> {
        let mut counts = self
            .stream
            .info_with_subjects(subject)
            .await
            .map_err(|e| unavailable(format!("cannot count the events on {subject}"), e))?;
        let mut total = 0_u64;
        while let Some(entry) = counts.next().await {
            let (_, n) = entry
                .map_err(|e| unavailable(format!("cannot count the events on {subject}"), e))?;
            total += u64::try_from(n).unwrap_or(u64::MAX);
        }
        Ok(total)
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        check_subject_tokens(&event.topic)?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        let ack = self
            .context
            .publish_with_headers(self.subject(&event.topic), headers, event.to_json().into())
            .await
            .map_err(|e| unavailable(format!("cannot publish {}", event.topic), e))?;
        // Stored (or recognised as a duplicate) only once the server says so.
        ack.await.map_err(|e| {
            unavailable(format!("{} not acknowledged by the stream", event.topic), e)
        })?;
        Ok(())
    }

    async fn consume(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>, BusError> {
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        let mut pulls = Vec::with_capacity(topics.len());
        for topic in &topics {
            crate::envelope::validate_topic(topic)?;
            pulls.push(TopicPull {
                consumer: self.pull_consumer(group, topic).await?,
                durable: durable_name(group, topic),
                open: None,
                refused_until: None,
                backlog: 0,
            });
        }
        // One inbox for every pull request of this member: the server's
        // answers to all topics arrive on one subscription, in order.
        let inbox = self.client.new_inbox();
        let subscriber = self
            .client
            .subscribe(format!("{inbox}.>"))
            .await
            .map_err(|e| unavailable(format!("cannot subscribe for group {group}"), e))?;
        Ok(Box::new(NatsConsumer {
            pulls: Some(Pulls {
                client: self.client.clone(),
                context: self.context.clone(),
                inbox,
                subscriber,
                topics: pulls,
                requests: 0,
                handed_out_at: None,
                pace: None,
            }),
        }))
    }

    async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let mut lag = 0_u64;
        for topic in topics {
            crate::envelope::validate_topic(topic)?;
            let name = durable_name(group, topic);
            match self.stream.consumer_info(&name).await {
                Ok(info) => {
                    let unacked = u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX);
                    lag = lag.saturating_add(info.num_pending).saturating_add(unacked);
                }
                // A group that never joined has all of history ahead of it,
                // as it would replay from the beginning on joining.
                Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => {
                    lag = lag.saturating_add(self.stored(&self.subject(topic)).await?);
                }
                Err(e) => {
                    return Err(unavailable(
                        format!("cannot read the lag of group {group}"),
                        e,
                    ));
                }
            }
        }
        Ok(lag)
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        // A JetStream round trip, not just the socket: the stream must answer.
        match tokio::time::timeout(PING_TIMEOUT, self.stream.get_info()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable("the stream does not answer".into(), e)),
            Err(_) => Err(BusError::Unavailable(format!(
                "the stream did not answer within {PING_TIMEOUT:?}"
            ))),
        }
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

/// One member of a consumer group.
struct NatsConsumer {
    /// Taken on drop, to settle what is still on its way.
    pulls: Option<Pulls>,
}

/// The pull requests of one member and the inbox they answer on.
struct Pulls {
    client: Client,
    context: jetstream::Context,
    inbox: String,
    subscriber: Subscriber,
    topics: Vec<TopicPull>,
    /// Numbers the pull requests, to tell a live request's end from a stale one's.
    requests: u64,
    /// When `next` last returned an event: the caller handles it until it
    /// asks again.
    handed_out_at: Option<Instant>,
    /// How long the caller takes per event (moving average).
    pace: Option<Duration>,
}

/// One topic of the group: its durable and its pull request in flight.
struct TopicPull {
    consumer: PullConsumer,
    durable: String,
    open: Option<PullRequest>,
    refused_until: Option<Instant>,
    /// Events the server said were still waiting, at the last delivery.
    backlog: u64,
}

/// A pull request the server may still be answering.
struct PullRequest {
    id: u64,
    remaining: usize,
    /// When to presume it lost if its expiry notice never came.
    given_up_at: Instant,
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let Some(pulls) = self.pulls.as_mut() else {
            return Err(BusError::Unavailable("the consumer is closed".into()));
        };
        let now = Instant::now();
        pulls.observe_pace(now);
        let until = now + wait;
        loop {
            pulls.ask(wait).await?;
            // Wake up for the caller's deadline, or to replace a request
            // that was lost (its expiry notice never came).
            let wake = pulls.next_check().map_or(until, |at| at.min(until));
            match tokio::time::timeout_at(wake, pulls.subscriber.next()).await {
                Ok(Some(message)) => {
                    if let Some(delivery) = pulls.answer(message).await? {
                        pulls.handed_out_at = Some(Instant::now());
                        return Ok(Some(delivery));
                    }
                }
                Ok(None) => {
                    return Err(BusError::Unavailable(
                        "the NATS subscription was closed".into(),
                    ));
                }
                Err(_) if Instant::now() >= until => return Ok(None),
                Err(_) => {}
            }
        }
    }
}

impl Drop for NatsConsumer {
    fn drop(&mut self) {
        // Events already pulled but never handed out go back to the group
        // at once instead of waiting out `ack_wait`.
        if let (Some(pulls), Ok(runtime)) =
            (self.pulls.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(pulls.release());
        }
    }
}

impl Pulls {
    /// Folds the time the caller spent on the last event into its pace.
    fn observe_pace(&mut self, now: Instant) {
        if let Some(at) = self.handed_out_at.take() {
            let took = now.saturating_duration_since(at);
            // Weighted towards the past, so one slow event does not shrink
            // the batches at once.
            self.pace = Some(self.pace.map_or(took, |pace| (pace * 4 + took) / 5));
        }
    }

    /// Sends a pull request for every topic that has none in flight.
    async fn ask(&mut self, wait: Duration) -> Result<(), BusError> {
        let now = Instant::now();
        let expires = wait.clamp(MIN_EXPIRES, MAX_EXPIRES);
        for (index, topic) in self.topics.iter_mut().enumerate() {
            if topic.open.as_ref().is_some_and(|r| r.given_up_at <= now) {
                tracing::debug!(durable = %topic.durable, "pull request lost; asking again");
                topic.open = None;
            }
            if topic.open.is_some() || topic.refused_until.is_some_and(|t| t > now) {
                continue;
            }
            self.requests += 1;
            let id = self.requests;
            let ack_wait = topic.consumer.cached_info().config.ack_wait;
            let batch = batch_size(topic.backlog, self.pace, ack_wait);
            let request = BatchConfig {
                batch,
                expires: Some(expires),
                ..BatchConfig::default()
            };
            topic
                .consumer
                .request_batch(
                    request,
                    Subject::from(reply_subject(&self.inbox, index, id)),
                )
                .await
                .map_err(|e| unavailable(format!("cannot pull from {}", topic.durable), e))?;
            topic.open = Some(PullRequest {
                id,
                remaining: batch,
                given_up_at: now + expires + EXPIRY_GRACE,
            });
            topic.refused_until = None;
        }
        Ok(())
    }

    /// The earliest instant at which `ask` has something to do.
    fn next_check(&self) -> Option<Instant> {
        self.topics
            .iter()
            .filter_map(|t| match &t.open {
                Some(r) => Some(r.given_up_at),
                None => t.refused_until,
            })
            .min()
    }

    /// Interprets one message on the inbox: an event, or the server saying
    /// something about a pull request.
    async fn answer(&mut self, message: async_nats::Message) -> Result<Option<Delivery>, BusError> {
        match message.status {
            None | Some(StatusCode::OK) => self.event(message).await,
            Some(StatusCode::IDLE_HEARTBEAT) => Ok(None),
            // Expired (408) or, for a no-wait request, nothing there (404).
            Some(StatusCode::TIMEOUT | StatusCode::NOT_FOUND) => {
                self.ended(&message.subject, None);
                Ok(None)
            }
            Some(StatusCode::NO_RESPONDERS) => Err(BusError::Unavailable(
                "no JetStream consumer answers the pull request (deleted, or JetStream is down)"
                    .into(),
            )),
            Some(status) => {
                let why = message.description.unwrap_or_default();
                if why.to_ascii_lowercase().contains("deleted") {
                    // Rejoining recreates it.
                    return Err(BusError::Unavailable(format!(
                        "the consumer was deleted: {why}"
                    )));
                }
                tracing::debug!(%status, reason = %why, "pull request refused; asking again shortly");
                self.ended(&message.subject, Some(Instant::now() + REFUSED_PAUSE));
                Ok(None)
            }
        }
    }

    /// Marks the pull request answered on `subject` as over, if it is the
    /// one in flight (a stale request's notice changes nothing).
    fn ended(&mut self, subject: &str, pause_until: Option<Instant>) {
        let Some((index, id)) = parse_reply_subject(&self.inbox, subject) else {
            return;
        };
        if let Some(topic) = self.topics.get_mut(index)
            && topic.open.as_ref().is_some_and(|r| r.id == id)
        {
            topic.open = None;
            topic.refused_until = pause_until;
        }
    }

    async fn event(&mut self, message: async_nats::Message) -> Result<Option<Delivery>, BusError> {
        let message = jetstream::Message {
            message,
            context: self.context.clone(),
        };
        let (durable, delivered, pending) = match message.info() {
            Ok(info) => (info.consumer.to_owned(), info.delivered, info.pending),
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "ignoring a message that is not a JetStream delivery");
                return Ok(None);
            }
        };
        if let Some(topic) = self.topics.iter_mut().find(|t| t.durable == durable) {
            topic.backlog = pending;
            if let Some(open) = topic.open.as_mut() {
                open.remaining = open.remaining.saturating_sub(1);
                if open.remaining == 0 {
                    topic.open = None;
                }
            }
        }
        let Some(reply) = message.reply.clone() else {
            return Ok(None);
        };
        let acker = NatsAcker {
            client: self.client.clone(),
            reply,
        };
        match Envelope::from_json(&message.payload) {
            Ok(envelope) => Ok(Some(Delivery {
                envelope,
                attempt: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
                acker: Box::new(acker),
            })),
            Err(e) => {
                // Not from a Bazaar producer: redelivering it would block
                // nothing but never succeed either, so the server drops it.
                tracing::error!(subject = %message.subject, error = %e, "terminating an event that is not a CloudEvents envelope");
                acker.settle(AckKind::Term).await?;
                Ok(None)
            }
        }
    }

    /// Gives back, for immediate redelivery, every event that arrives on
    /// the inbox until the requests in flight have ended.
    async fn release(mut self) {
        loop {
            // Wait while a request may still deliver; after that, only take
            // what has already arrived.
            let until = self
                .topics
                .iter()
                .filter_map(|t| t.open.as_ref().map(|r| r.given_up_at))
                .max()
                .unwrap_or_else(Instant::now);
            let message = match tokio::time::timeout_at(until, self.subscriber.next()).await {
                Ok(Some(message)) => message,
                Ok(None) | Err(_) => break,
            };
            match self.answer(message).await {
                Ok(Some(delivery)) => {
                    if let Err(e) = delivery.acker.nack(Duration::ZERO).await {
                        tracing::debug!(event_id = %delivery.envelope.id, error = %e, "cannot give an unhandled event back; it returns after ack_wait");
                    }
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        let _ = self.subscriber.unsubscribe().await;
    }
}

/// Settles one delivery through its `$JS.ACK` reply subject.
struct NatsAcker {
    client: Client,
    reply: Subject,
}

impl NatsAcker {
    /// Sends `kind` and waits for the server to confirm it (the "ack ack"),
    /// so an ack that returned is recorded: the group's lag no longer counts
    /// it and no other member gets it.
    async fn settle(&self, kind: AckKind) -> Result<(), BusError> {
        self.client
            .request(self.reply.clone(), kind.into())
            .await
            .map(drop)
            .map_err(|e| unavailable("the stream did not confirm the ack".into(), e))
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(&self) -> Result<(), BusError> {
        self.settle(AckKind::Ack).await
    }

    async fn nack(&self, delay: Duration) -> Result<(), BusError> {
        self.settle(AckKind::Nak((!delay.is_zero()).then_some(delay)))
            .await
    }
}

fn unavailable(what: String, error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {error}"))
}

/// The subject prefix of stream `stream`: its name in lower case. Stream
/// names are limited to what is safe both as a stream name and as one
/// subject token.
fn subject_prefix(stream: &str) -> Result<String, BusError> {
    let ok = !stream.is_empty()
        && stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(stream.to_ascii_lowercase())
    } else {
        Err(BusError::Unavailable(format!(
            "invalid stream name {stream:?}: use letters, digits, '-' and '_'"
        )))
    }
}

/// Refuses what NATS cannot carry as subject tokens. Publishing accepts
/// more than [`crate::envelope::validate_topic`] (dead-letter topics embed
/// a group name), as the embedded log does.
fn check_subject_tokens(topic: &str) -> Result<(), BusError> {
    let ok = topic
        .split('.')
        .all(|t| !t.is_empty() && !t.contains(['*', '>']) && !t.chars().any(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(BusError::BadTopic(topic.to_owned()))
    }
}

/// The durable consumer name of `group` on `topic`: readable, limited to
/// `[A-Za-z0-9_-]`, e.g. `notifications__catalog_product_created`.
///
/// When replacing characters by `_` could make two (group, topic) pairs
/// meet, a hash of the original pair is appended. The result must never
/// change between releases: a new name is a new group, which replays the
/// whole stream.
fn durable_name(group: &str, topic: &str) -> String {
    fn clean(s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let topic_plain = topic.split('.').all(plain);
    let mut name = format!("{}__{}", clean(group), clean(topic));
    let ambiguous = !plain(group) || !topic_plain;
    if ambiguous || name.len() > MAX_DURABLE {
        name.truncate(MAX_DURABLE - 10);
        name.push_str(&format!("_{:08x}", fnv1a(&[group, "\u{0}", topic])));
    }
    name
}

/// 32-bit FNV-1a: tiny, and fixed forever (unlike `std`'s hasher), which
/// durable names need.
fn fnv1a(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Events to ask for: one when idle, so an idle member holds nothing, and
/// up to [`MAX_BATCH`] while the server reports a backlog, but no more than
/// the caller handles, at its `pace`, in a quarter of `ack_wait`: the last
/// of a batch must not be redelivered elsewhere while it waits here.
fn batch_size(backlog: u64, pace: Option<Duration>, ack_wait: Duration) -> usize {
    let by_backlog = usize::try_from(backlog.saturating_add(1)).unwrap_or(MAX_BATCH);
    let by_time = match pace {
        Some(pace) if !pace.is_zero() => {
            usize::try_from((ack_wait / 4).as_nanos() / pace.as_nanos()).unwrap_or(MAX_BATCH)
        }
        _ => MAX_BATCH,
    };
    by_backlog.min(by_time).clamp(1, MAX_BATCH)
}

/// Where the server answers pull request `id` of topic `index`.
fn reply_subject(inbox: &str, index: usize, id: u64) -> String {
    format!("{inbox}.{index}.{id}")
}

/// The topic index and request id of a subject made by [`reply_subject`].
fn parse_reply_subject(inbox: &str, subject: &str) -> Option<(usize, u64)> {
    let rest = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let (index, id) = rest.split_once('.')?;
    Some((index.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_names_are_readable_for_plain_names() {
        assert_eq!(
            durable_name("notifications", "catalog.product.created"),
            "notifications__catalog_product_created"
        );
        assert_eq!(
            durable_name("search-indexer", "orders.order.confirmed"),
            "search-indexer__orders_order_confirmed"
        );
    }

    #[test]
    fn durable_names_only_use_safe_characters() {
        for (group, topic) in [
            ("a.b c*>", "x.y.z"),
            ("grp", "deadletter.my_group.event"),
            ("ünïcode", "a.b.c"),
            (&"g".repeat(300), "a.b.c"),
        ] {
            let name = durable_name(group, topic);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}"
            );
            assert!(name.len() <= MAX_DURABLE, "{name}");
        }
    }

    #[test]
    fn durable_names_do_not_collide_when_characters_are_replaced() {
        let pairs = [
            ("a", "b.c_d.e"),
            ("a", "b_c.d.e"),
            ("a.b", "c.d.e"),
            ("a_b", "c.d.e"),
            ("a", "b.c.d.e"),
            (&"g".repeat(300), "a.b.c"),
            (&"g".repeat(301), "a.b.c"),
        ];
        let names: std::collections::HashSet<String> =
            pairs.iter().map(|(g, t)| durable_name(g, t)).collect();
        assert_eq!(names.len(), pairs.len(), "{names:?}");
    }

    #[test]
    fn durable_names_are_stable() {
        // Changing a name silently creates a new group that replays everything.
        assert_eq!(durable_name("a_b", "c.d.e"), durable_name("a_b", "c.d.e"));
        assert_eq!(fnv1a(&["a"]), 0xe40c_292c);
    }

    #[test]
    fn stream_prefix_is_the_lower_case_name() {
        assert_eq!(subject_prefix("BAZAAR").unwrap(), "bazaar");
        assert_eq!(subject_prefix("Test_1-x").unwrap(), "test_1-x");
        for bad in ["", "a.b", "a b", "a*", "a>"] {
            assert!(subject_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn published_topics_must_be_subject_tokens() {
        assert!(check_subject_tokens("catalog.product.created").is_ok());
        assert!(check_subject_tokens("deadletter.My-Group.event").is_ok());
        for bad in ["", "a..b", "a.*.c", "a.>", "a.b c.d", "a.b."] {
            assert!(check_subject_tokens(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_batches_follow_the_backlog() {
        let wait = Duration::from_secs(30);
        assert_eq!(batch_size(0, None, wait), 1);
        assert_eq!(batch_size(9, None, wait), 10);
        assert_eq!(batch_size(1_000_000, None, wait), MAX_BATCH);
        assert_eq!(batch_size(u64::MAX, Some(Duration::ZERO), wait), MAX_BATCH);
        // A slow handler gets no more than it handles in a quarter of ack_wait.
        assert_eq!(batch_size(1_000, Some(Duration::from_secs(1)), wait), 7);
        assert_eq!(batch_size(1_000, Some(Duration::from_secs(60)), wait), 1);
        assert_eq!(batch_size(3, Some(Duration::from_micros(1)), wait), 4);
    }

    #[test]
    fn reply_subjects_round_trip() {
        let inbox = "_INBOX.abc";
        let subject = reply_subject(inbox, 3, 42);
        assert_eq!(parse_reply_subject(inbox, &subject), Some((3, 42)));
        assert_eq!(parse_reply_subject(inbox, "_INBOX.abcd.3.42"), None);
        assert_eq!(parse_reply_subject(inbox, "_INBOX.abc.x.1"), None);
        assert_eq!(parse_reply_subject(inbox, "bazaar.a.b.c"), None);
    }
}
