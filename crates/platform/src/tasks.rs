//! Background tasks whose lifetime the server owns.
//!
//! A service starts them with `Context::spawn` (or a [`Tasks`] handle kept
//! for later); each gets a [`Shutdown`] that resolves once the server has
//! drained its requests, so it can finish the unit of work at hand and
//! return. `Server::run_until` awaits them all before it stops the event
//! side and closes the database, and aborts any that do not return within
//! the drain time, naming it. A task that fails or panics is logged with
//! its name.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Resolves when the server stops; given to every background task.
///
/// Dropping the server without running it (or aborting its run) counts as
/// stopping too, so no task outlives the server that started it.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Whether the server is stopping.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves when the server is stopping.
    pub async fn requested(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone: the server is gone too.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// `work`, unless the server stops first (then `None`).
    pub async fn unless_requested<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            out = work => Some(out),
            () = self.requested() => None,
        }
    }
}

/// Starts background tasks for one server; cheap to clone, so code that
/// starts tasks later (one per saga, a reconnect) can keep one.
#[derive(Debug, Clone)]
pub struct Tasks {
    shutdown: Shutdown,
    running: Arc<Mutex<Vec<Running>>>,
}

/// A task started and not yet awaited.
#[derive(Debug)]
struct Running {
    name: String,
    handle: JoinHandle<()>,
}

/// The server's side of [`Tasks`]: it asks them to stop and awaits them.
#[derive(Debug)]
pub(crate) struct Stopper {
    stop: watch::Sender<bool>,
    tasks: Tasks,
}

impl Tasks {
    /// A set of tasks and the handle that stops them.
    pub(crate) fn new() -> (Self, Stopper) {
        let (stop, rx) = watch::channel(false);
        let tasks = Self {
            shutdown: Shutdown(rx),
            running: Arc::default(),
        };
        let stopper = Stopper {
            stop,
            tasks: tasks.clone(),
        };
        (tasks, stopper)
    }

    /// Runs `task` in the background until it returns. It is given the
    /// server's [`Shutdown`]: when that resolves, it should finish what it
    /// is doing and return. An error or a panic is logged with `name`.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        let work = task(self.shutdown.clone());
        let label = name.clone();
        let handle = tokio::spawn(async move {
            match AssertUnwindSafe(work).catch_unwind().await {
                Ok(Ok(())) => tracing::debug!(task = %label, "background task ended"),
                Ok(Err(e)) => {
                    tracing::error!(task = %label, error = format!("{e:#}"), "background task failed");
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    tracing::error!(task = %label, panic = %message, "background task panicked");
                }
            }
        });
        let mut running = self.running();
        // Tasks that come and go (one per saga) must not pile up here.
        running.retain(|task| !task.handle.is_finished());
        running.push(Running { name, handle });
    }

    /// The signal this set's tasks get, for code that watches it itself.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Stopper {
    /// Tells every task to stop and awaits them, at most `timeout` in all;
    /// a task still running then is aborted, with a warning naming it.
    pub(crate) async fn stop(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Tasks started while others stop see the signal at once.
            let batch = std::mem::take(&mut *self.tasks.running());
            if batch.is_empty() {
                break;
            }
            for Running { name, mut handle } in batch {
                if tokio::time::timeout_at(deadline, &mut handle)
                    .await
                    .is_err()
                {
                    tracing::warn!(task = %name, ?timeout, "background task did not stop in time; aborting it");
                    handle.abort();
                    // Aborting is asynchronous: wait for the task to be
                    // dropped, so nothing of it runs after the database
                    // closes.
                    let _ = handle.await;
                }
            }
        }
    }
}
