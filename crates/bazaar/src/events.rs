//! `bazaar events dead-letters`: the events consumer groups gave up on, and
//! replaying them.
//!
//! A group dead-letters only poison (an event that does not decode as its
//! contract, or that its handler rejects for good); transient failures are
//! retried until handled. The dead letters are events themselves, on
//! `deadletter.<group>.event`. This command reads each group's as a consumer
//! group of its own (`bazaar-dead-letters-<group>`), so listing changes
//! nothing for the services: a listed letter is left for the next listing, a replayed one is
//! settled. Replaying publishes the original event again, under its own id:
//! the group that gave up handles it anew, and every group that handled it
//! already finds it in its inbox and skips it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bazaar_bus::subscription::{DeadLetter, dead_letter_topic};
use bazaar_bus::{Broker, BusError};
use clap::{Args, Subcommand};
use url::Url;

use crate::registry::SERVICES;

/// The prefix of the consumer groups this command reads dead letters as.
pub const GROUP: &str = "bazaar-dead-letters";
/// How long a listed letter is left alone before it can be read again.
const LEAVE_FOR: Duration = Duration::from_secs(3);
/// How long to wait for the next letter before the list is complete.
const QUIET: Duration = Duration::from_millis(500);

/// `bazaar events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List the events consumer groups gave up on (poison); --replay publishes them again
    #[command(long_about = DEAD_LETTERS_LONG_ABOUT)]
    DeadLetters(DeadLettersArgs),
}

const DEAD_LETTERS_LONG_ABOUT: &str = "\
List the events consumer groups gave up on: poison, an event that does not
decode as its contract or that its handler rejects for good (a transient
failure is retried until handled, never dead-lettered). Each line names the
group, the event's topic and id, the deliveries made and the handler's error.

With --replay each listed event is published again under its own id: the
group that gave up handles it anew (dead-lettering it again if it is still
poison), and groups that handled it already skip it (their inbox has it). On
NATS, JetStream drops a replay within two minutes of the event's first
publication (its duplicate window).

Reads the embedded event log of a fleet started with `bazaar up --data-dir
DIR`, or JetStream with --nats.";

/// Options of `bazaar events dead-letters`.
#[derive(Debug, Clone, Args)]
pub struct DeadLettersArgs {
    /// The fleet's data directory; its embedded event log is DIR/events.db
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Read NATS JetStream instead: nats://HOST[:PORT][/STREAM]
    #[arg(long, value_name = "URL", value_parser = crate::cli::parse_nats)]
    pub nats: Option<Url>,
    /// Only this consumer group's dead letters [default: every service's]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Publish each listed event again, so its group handles it anew
    #[arg(long)]
    pub replay: bool,
}

/// Runs `bazaar events …`.
pub fn main(command: &EventsCommand) -> ExitCode {
    let EventsCommand::DeadLetters(args) = command;
    let Some(runtime) = crate::small_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(dead_letters(args)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dead_letters(args: &DeadLettersArgs) -> anyhow::Result<String> {
    let log = args.data_dir.join("events.db");
    if args.nats.is_none() && !log.is_file() {
        anyhow::bail!(
            "no event log at {}: name the fleet's data directory with --data-dir, or JetStream with --nats",
            log.display()
        );
    }
    let broker = bazaar_platform::events::open(args.nats.as_ref(), &log).await?;
    let groups: Vec<String> = match &args.group {
        Some(group) => vec![group.clone()],
        None => SERVICES.iter().map(|s| s.name.to_owned()).collect(),
    };
    let letters = read(broker.as_ref(), &groups, args.replay).await?;
    Ok(render(&letters, args.replay))
}

/// Reads every dead letter of `groups` not settled yet; with `replay`,
/// publishes each original event again and settles its letter, else leaves
/// it for the next reading.
///
/// # Errors
/// The broker failed.
pub async fn read(
    broker: &dyn Broker,
    groups: &[String],
    replay: bool,
) -> Result<Vec<DeadLetter>, BusError> {
    let mut letters = Vec::new();
    for group in groups {
        read_group(broker, group, replay, &mut letters).await?;
    }
    Ok(letters)
}

async fn read_group(
    broker: &dyn Broker,
    group: &str,
    replay: bool,
    letters: &mut Vec<DeadLetter>,
) -> Result<(), BusError> {
    let topics = [dead_letter_topic(group)];
    let mut consumer = broker.consume(&format!("{GROUP}-{group}"), &topics).await?;
    let mut seen = HashSet::new();
    while let Some(delivery) = consumer.next(QUIET).await? {
        // A letter left alone comes again after LEAVE_FOR: the list is done.
        if !seen.insert(delivery.envelope.id.clone()) {
            delivery.acker.nack(LEAVE_FOR).await?;
            break;
        }
        let letter: DeadLetter = match serde_json::from_value(delivery.envelope.data.clone()) {
            Ok(letter) => letter,
            Err(e) => {
                tracing::warn!(id = %delivery.envelope.id, error = %e, "not a dead letter; skipped");
                delivery.acker.ack().await?;
                continue;
            }
        };
        if replay {
            broker.publish(&letter.event).await?;
            delivery.acker.ack().await?;
        } else {
            delivery.acker.nack(LEAVE_FOR).await?;
        }
        letters.push(letter);
    }
    Ok(())
}

fn render(letters: &[DeadLetter], replayed: bool) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut out = format!(
        "{:<16} {:<32} {:<36} {:>8}  ERROR\n",
        "GROUP", "TOPIC", "EVENT ID", "ATTEMPTS"
    );
    for letter in letters {
        out.push_str(&format!(
            "{:<16} {:<32} {:<36} {:>8}  {}\n",
            letter.group, letter.event.topic, letter.event.id, letter.attempts, letter.error
        ));
    }
    let n = letters.len();
    let s = if n == 1 { "" } else { "s" };
    if replayed {
        out.push_str(&format!(
            "{n} event{s} published again to {}\n",
            if n == 1 { "its topic" } else { "their topics" }
        ));
    } else {
        out.push_str(&format!(
            "{n} dead letter{s}; --replay publishes them again\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bazaar_bus::embedded::EmbeddedLog;
    use bazaar_bus::{Envelope, Event};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Created {
        n: u32,
    }

    impl Event for Created {
        const TOPIC: &'static str = "catalog.product.created";
        const VERSION: u32 = 1;
    }

    async fn letter_of(broker: &dyn Broker, group: &str) -> Envelope {
        let original = Envelope::new("catalog", Some("p-1"), &Created { n: 7 }).unwrap();
        let letter = DeadLetter {
            group: group.to_owned(),
            attempts: 1,
            error: "poison event: no such seller".to_owned(),
            event: original.clone(),
        };
        let mut dead = Envelope::new(group, Some(&original.id), &letter).unwrap();
        dead.topic = dead_letter_topic(group);
        broker.publish(&dead).await.unwrap();
        original
    }

    #[tokio::test]
    async fn listing_leaves_letters_and_replaying_publishes_the_original_once() {
        let dir = tempfile::tempdir().unwrap();
        let broker: Arc<dyn Broker> = Arc::new(
            EmbeddedLog::open(&dir.path().join("events.db"))
                .await
                .unwrap(),
        );
        let original = letter_of(broker.as_ref(), "inventory").await;
        let _other = letter_of(broker.as_ref(), "notifications").await;
        let inventory = ["inventory".to_owned()];

        // Listing twice shows the letter twice: reading it settles nothing.
        for _ in 0..2 {
            let listed = read(broker.as_ref(), &inventory, false).await.unwrap();
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert_eq!(listed[0].event.id, original.id);
            tokio::time::sleep(LEAVE_FOR + Duration::from_millis(100)).await;
        }
        let text = render(
            &read(broker.as_ref(), &inventory, false).await.unwrap(),
            false,
        );
        assert!(text.contains("catalog.product.created"), "{text}");
        assert!(text.contains("no such seller"), "{text}");
        tokio::time::sleep(LEAVE_FOR + Duration::from_millis(100)).await;

        // A group on the original topic gets it once the letter is replayed.
        let mut watcher = broker
            .consume("inventory-check", &[Created::TOPIC.to_owned()])
            .await
            .unwrap();
        assert!(
            watcher
                .next(Duration::from_millis(300))
                .await
                .unwrap()
                .is_none()
        );
        let replayed = read(broker.as_ref(), &inventory, true).await.unwrap();
        assert_eq!(replayed.len(), 1);
        let again = watcher.next(Duration::from_secs(2)).await.unwrap().unwrap();
        assert_eq!(
            again.envelope.id, original.id,
            "the same event, under its own id"
        );
        again.acker.ack().await.unwrap();

        // Replayed letters are settled; another group's are untouched.
        assert!(
            read(broker.as_ref(), &inventory, false)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(render(&[], false), "no dead letters\n");
        let everyone = ["inventory".to_owned(), "notifications".to_owned()];
        let rest = read(broker.as_ref(), &everyone, false).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].group, "notifications");
    }
}
