//! Live push across replicas. The replica that stores a notification also
//! appends `notifications.notification.created` to its outbox, in the same
//! transaction; every replica consumes that topic in a consumer group of
//! its own (named after its instance), so each sees every notification, and
//! hands it to the streams of that user connected to it through the
//! [`Hub`]. Nothing is shared in process memory between replicas.
//!
//! The event is internal to notifications: its payload is defined here,
//! not in `bazaar-events`, and no other service should consume it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bazaar_bus::subscription::Handler;
use bazaar_bus::{Envelope, Event};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::{Kind, Link};
use crate::store::Notification;

/// `notifications.notification.created`: a notification was stored; the
/// subject is its user's id. Internal to notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NotificationCreated {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) link: String,
    /// Milliseconds since the epoch.
    pub(crate) created_at: i64,
}

impl Event for NotificationCreated {
    const TOPIC: &'static str = "notifications.notification.created";
    const VERSION: u32 = 1;
}

impl From<&Notification> for NotificationCreated {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            user_id: n.user_id,
            kind: n.kind.as_str().to_owned(),
            title: n.title.clone(),
            body: n.body.clone(),
            link: n.link.as_str().to_owned(),
            created_at: n.created_at,
        }
    }
}

impl TryFrom<NotificationCreated> for Notification {
    type Error = anyhow::Error;

    fn try_from(e: NotificationCreated) -> Result<Self, Self::Error> {
        Ok(Self {
            id: e.id,
            user_id: e.user_id,
            kind: Kind::parse(&e.kind)
                .ok_or_else(|| anyhow::anyhow!("unknown notification kind {:?}", e.kind))?,
            title: e.title,
            body: e.body,
            link: Link::stored(e.link),
            read: false,
            created_at: e.created_at,
        })
    }
}

/// Notifications waiting in one stream's channel before it counts as
/// lagging (it then catches up from the database).
const CHANNEL: usize = 64;

/// The streams connected to this replica, by user: one broadcast channel
/// per user with at least one stream, removed when the last one goes. A
/// channel's receivers are that user's streams here, so the caps on streams
/// per user and in all are checked against them.
#[derive(Clone, Debug)]
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
    per_user: usize,
    total: usize,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<Uuid, broadcast::Sender<Arc<Notification>>>,
    /// Streams open here, every user's together.
    open: usize,
}

impl Default for Hub {
    /// A hub without caps.
    fn default() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

/// Why a stream was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The user holds this many already, the most one may.
    User(usize),
    /// This replica holds as many as it may.
    All,
}

/// One stream's place in the hub; leaving it (drop) frees the user's
/// channel when it was the last.
#[derive(Debug)]
pub(crate) struct Listener {
    hub: Hub,
    user: Uuid,
    /// New notifications of the user, as this replica hears of them.
    pub(crate) rx: broadcast::Receiver<Arc<Notification>>,
}

impl Hub {
    /// A hub letting in `per_user` streams per user and `total` in all.
    pub(crate) fn new(per_user: usize, total: usize) -> Self {
        Self {
            state: Arc::default(),
            per_user,
            total,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts listening to `user`'s new notifications, unless the user or
    /// this replica holds as many streams as it may.
    pub(crate) fn listen(&self, user: Uuid) -> Result<Listener, Full> {
        let mut state = self.state();
        if state.open >= self.total {
            return Err(Full::All);
        }
        let mine = state
            .users
            .get(&user)
            .map_or(0, broadcast::Sender::receiver_count);
        if mine >= self.per_user {
            return Err(Full::User(self.per_user));
        }
        let rx = state
            .users
            .entry(user)
            .or_insert_with(|| broadcast::channel(CHANNEL).0)
            .subscribe();
        state.open += 1;
        Ok(Listener {
            hub: self.clone(),
            user,
            rx,
        })
    }

    /// Hands `notification` to its user's streams on this replica; how
    /// many there were.
    pub(crate) fn push(&self, notification: Notification) -> usize {
        self.state()
            .users
            .get(&notification.user_id)
            .map_or(0, |tx| tx.send(Arc::new(notification)).unwrap_or(0))
    }

    /// Users with at least one stream here.
    #[cfg(test)]
    pub(crate) fn users(&self) -> usize {
        self.state().users.len()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut state = self.hub.state();
        state.open = state.open.saturating_sub(1);
        // This listener's receiver is still alive here: it is the last one
        // when it is the only one.
        if state
            .users
            .get(&self.user)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            state.users.remove(&self.user);
        }
    }
}

/// The consumer group of this replica's live push: one per instance, so
/// every replica sees every notification. Instance names become topic
/// parts (the dead-letter topic), so only lower-case letters, digits, `-`
/// and `_` are kept.
pub(crate) fn group(instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{clean}-live")
}

/// Pushes each `notifications.notification.created` to the streams here.
pub(crate) struct Fanout {
    pub(crate) hub: Hub,
    pub(crate) metrics: crate::metrics::NotificationMetrics,
}

#[async_trait]
impl Handler for Fanout {
    async fn handle(&self, _tx: &mut Transaction<'_, Any>, event: &Envelope) -> anyhow::Result<()> {
        let created: NotificationCreated = event.decode()?;
        let pushed = self.hub.push(created.try_into()?);
        if pushed > 0 {
            self.metrics.pushed(pushed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(user: Uuid) -> Notification {
        Notification {
            id: Uuid::now_v7(),
            user_id: user,
            kind: Kind::Welcome,
            title: "t".into(),
            body: "b".into(),
            link: Link::home(),
            read: false,
            created_at: 0,
        }
    }

    #[tokio::test]
    async fn a_user_gets_only_their_own_and_channels_go_with_the_last_stream() {
        let hub = Hub::default();
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = hub.listen(ann).unwrap();
        let second = hub.listen(ann).unwrap();
        assert_eq!(hub.users(), 1);
        assert_eq!(hub.push(notification(bob)), 0, "bob has no stream");
        let sent = notification(ann);
        assert_eq!(hub.push(sent.clone()), 2);
        assert_eq!(*first.rx.recv().await.unwrap(), sent);
        drop(second);
        assert_eq!(hub.users(), 1, "one stream of ann is left");
        drop(first);
        assert_eq!(hub.users(), 0);
    }

    #[test]
    fn streams_are_capped_per_user_and_in_all_and_a_closed_one_frees_its_place() {
        let hub = Hub::new(2, 3);
        let (ann, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let first = hub.listen(ann).unwrap();
        let _second = hub.listen(ann).unwrap();
        assert_eq!(hub.listen(ann).unwrap_err(), Full::User(2));
        let _bob = hub.listen(bob).unwrap();
        assert_eq!(hub.listen(cy).unwrap_err(), Full::All);
        drop(first);
        assert!(hub.listen(ann).is_ok());
    }

    #[test]
    fn groups_are_named_after_the_instance() {
        assert_eq!(group("notifications-0"), "notifications-0-live");
        assert_eq!(group("Pod.A/1"), "pod-a-1-live");
        assert!(
            bazaar_bus::envelope::validate_topic(&bazaar_bus::subscription::dead_letter_topic(
                &group("Pod.A/1")
            ))
            .is_ok()
        );
    }

    #[test]
    fn the_event_carries_the_whole_notification() {
        let n = notification(Uuid::now_v7());
        let envelope = Envelope::new(
            "notifications",
            Some(&n.user_id.to_string()),
            &NotificationCreated::from(&n),
        )
        .unwrap();
        let back: Notification = envelope
            .decode::<NotificationCreated>()
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(back, n);
    }
}
