//! The instances of one upstream service, their breakers and load, the
//! power-of-two-choices pick among them, and the active health check that
//! readmits an ejected instance as soon as it is ready again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::breaker::{Admission, Breaker};
use super::{BreakerPolicy, BreakerState, CallError, lock};

/// The instance list of one upstream service, shared by every client of it.
///
/// Cloning is cheap and clones share state, so whoever learns about new
/// instances (the launcher, DNS refresh) can [`set`](Endpoints::set) the list
/// while calls are in flight.
#[derive(Clone)]
pub struct Endpoints {
    inner: Arc<Inner>,
}

struct Inner {
    service: Arc<str>,
    nodes: RwLock<Arc<[Arc<Node>]>>,
    version: AtomicU64,
    /// Whether a health-check task is watching the ejected instances.
    watching: AtomicBool,
}

/// How often an ejected instance's `/readyz` is asked whether it is back.
pub const HEALTH_CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long one health check may take; a frozen instance never answers.
pub const HEALTH_CHECK_LIMIT: Duration = Duration::from_millis(500);

struct Node {
    url: Url,
    breaker: Mutex<Breaker>,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("service", &self.inner.service)
            .field("urls", &self.urls())
            .finish()
    }
}

impl Endpoints {
    /// The given instances of `service` (the name appears in errors and logs).
    /// Duplicate URLs are kept once.
    pub fn new(service: &str, urls: Vec<Url>) -> Self {
        let endpoints = Self {
            inner: Arc::new(Inner {
                service: Arc::from(service),
                nodes: RwLock::new(Arc::from(Vec::new())),
                version: AtomicU64::new(0),
                watching: AtomicBool::new(false),
            }),
        };
        endpoints.set(urls);
        endpoints
    }

    /// The upstream service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    pub(crate) fn service_arc(&self) -> Arc<str> {
        self.inner.service.clone()
    }

    /// Replaces the instance list. Instances that stay keep their breaker
    /// state and in-flight count, so a refresh does not forgive a failing one.
    pub fn set(&self, urls: Vec<Url>) {
        let mut nodes = self
            .inner
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next: Vec<Arc<Node>> = Vec::with_capacity(urls.len());
        for url in urls {
            if next.iter().any(|node| node.url == url) {
                continue;
            }
            let node = nodes
                .iter()
                .find(|node| node.url == url)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(Node {
                        url,
                        breaker: Mutex::new(Breaker::default()),
                        in_flight: AtomicUsize::new(0),
                    })
                });
            next.push(node);
        }
        *nodes = Arc::from(next);
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// The current instance list.
    pub fn urls(&self) -> Vec<Url> {
        self.snapshot()
            .iter()
            .map(|node| node.url.clone())
            .collect()
    }

    /// Each instance with its breaker state, for readiness checks and metrics.
    pub fn breaker_states(&self) -> Vec<(Url, BreakerState)> {
        self.snapshot()
            .iter()
            .map(|node| (node.url.clone(), lock(&node.breaker).state()))
            .collect()
    }

    /// Bumped by every [`set`](Endpoints::set), so per-endpoint caches know when to prune.
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<[Arc<Node>]> {
        self.inner
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether an instance other than `url` would admit a call now, so a
    /// retry can go there at once instead of backing off.
    pub(crate) fn admits_other(&self, url: &Url) -> bool {
        let now = Instant::now();
        self.snapshot()
            .iter()
            .any(|node| node.url != *url && lock(&node.breaker).admits(now))
    }

    /// Makes sure a task asks every ejected instance's `/readyz` every
    /// [`HEALTH_CHECK_EVERY`] and readmits those that answer 200. The task
    /// ends when no instance is ejected (or the endpoints are dropped), and
    /// is started again by the next ejection. Outside a Tokio runtime there
    /// is no active check: ejections end by their probes alone.
    fn watch(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        runtime.spawn(watch_ejected(inner));
    }

    /// Power of two choices among the instances whose breaker admits a call:
    /// two distinct random ones, the less busy wins. Random pairs rather than
    /// the global minimum keep many clients from herding onto the same
    /// instance on stale counts. `avoid` (the instance that just failed) is
    /// skipped when another is admitted.
    pub(crate) fn pick(
        &self,
        policy: BreakerPolicy,
        avoid: Option<&Url>,
    ) -> Result<Lease, CallError> {
        let nodes = self.snapshot();
        if nodes.is_empty() {
            return Err(CallError::NoEndpoints {
                service: self.service_arc(),
            });
        }
        let now = Instant::now();
        let mut admitted: Vec<&Arc<Node>> = nodes
            .iter()
            .filter(|node| lock(&node.breaker).admits(now))
            .collect();
        if admitted.len() > 1
            && let Some(avoid) = avoid
            && admitted.iter().any(|node| node.url != *avoid)
        {
            admitted.retain(|node| node.url != *avoid);
        }
        let choices: [Option<&Arc<Node>>; 2] = match admitted.len() {
            0 => [None, None],
            1 => [Some(admitted[0]), None],
            n => {
                let first = fastrand::usize(..n);
                let mut second = fastrand::usize(..n - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (admitted[first], admitted[second]);
                if b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed) {
                    [Some(b), Some(a)]
                } else {
                    [Some(a), Some(b)]
                }
            }
        };
        // The breaker is checked again under its lock: another call may have
        // taken the half-open probe slot since the filter above.
        for node in choices.into_iter().flatten() {
            let admission = lock(&node.breaker).admit(now);
            if let Some(admission) = admission {
                node.in_flight.fetch_add(1, Ordering::Relaxed);
                return Ok(Lease {
                    node: node.clone(),
                    admission,
                    policy,
                    settled: false,
                    endpoints: self.clone(),
                });
            }
        }
        Err(CallError::CircuitOpen {
            service: self.service_arc(),
        })
    }
}

/// One attempt's hold on an endpoint: counts it in flight and reports the
/// outcome to its breaker. Dropped without a verdict, it gives back a probe slot.
pub(crate) struct Lease {
    node: Arc<Node>,
    admission: Admission,
    policy: BreakerPolicy,
    settled: bool,
    endpoints: Endpoints,
}

impl Lease {
    pub(crate) fn url(&self) -> &Url {
        &self.node.url
    }

    /// The endpoint answered (even if with a client error).
    pub(crate) fn success(mut self) {
        self.settled = true;
        let changed = lock(&self.node.breaker).on_success(self.admission);
        if let Some(state) = changed {
            tracing::info!(service = %self.endpoints.service(), url = %self.node.url, ?state, "Circuit closed.");
        }
    }

    /// The endpoint failed in a way that should count against it.
    pub(crate) fn failure(mut self) {
        self.settled = true;
        let changed =
            lock(&self.node.breaker).on_failure(self.admission, Instant::now(), &self.policy);
        if let Some(state) = changed {
            tracing::warn!(
                service = %self.endpoints.service(),
                url = %self.node.url,
                ?state,
                "Circuit opened: the instance is ejected until a probe or its health check succeeds."
            );
            self.endpoints.watch();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.settled {
            lock(&self.node.breaker).on_abandon(self.admission, Instant::now());
        }
    }
}

impl Inner {
    /// The instances whose breaker is not closed.
    fn ejected(&self) -> Vec<Arc<Node>> {
        self.nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|node| lock(&node.breaker).state() != BreakerState::Closed)
            .cloned()
            .collect()
    }
}

/// The health-check task of one [`Endpoints`]: see [`Endpoints::watch`].
async fn watch_ejected(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(HEALTH_CHECK_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let ejected = inner.ejected();
        if ejected.is_empty() {
            inner.watching.store(false, Ordering::Release);
            // An ejection between the look and the store found the flag
            // still set and started no task: look once more.
            if inner.ejected().is_empty() || inner.watching.swap(true, Ordering::AcqRel) {
                return;
            }
            continue;
        }
        let checks = ejected
            .iter()
            .map(|node| async move { (node, ready(&node.url).await) });
        for (node, ready) in futures_util::future::join_all(checks).await {
            if ready && lock(&node.breaker).readmit().is_some() {
                tracing::info!(
                    service = %inner.service,
                    url = %node.url,
                    "Instance readmitted: its health check answered ready."
                );
            }
        }
    }
}

/// Whether the instance at `url` answers `GET /readyz` with 200 within
/// [`HEALTH_CHECK_LIMIT`].
async fn ready(url: &Url) -> bool {
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let path = format!("{}/readyz", url.path().trim_end_matches('/'));
    matches!(
        crate::probe::get_status_within(authority, &path, HEALTH_CHECK_LIMIT).await,
        Ok(200)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU16;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    /// An instance whose `/readyz` answers the status held in the returned cell.
    async fn instance(status: u16) -> (Url, Arc<AtomicU16>) {
        let cell = Arc::new(AtomicU16::new(status));
        let answer = cell.clone();
        let router = Router::new().route(
            "/readyz",
            get(move || {
                let status = answer.load(Ordering::SeqCst);
                async move { StatusCode::from_u16(status).unwrap() }
            }),
        );
        (bazaar_testkit::serve(router).await, cell)
    }

    fn eject(endpoints: &Endpoints) {
        let policy = BreakerPolicy {
            open_for: Duration::from_secs(600),
            open_max: Duration::from_secs(600),
            ..policy()
        };
        endpoints.pick(policy, None).unwrap().failure();
        assert_eq!(endpoints.breaker_states()[0].1, BreakerState::Open);
    }

    async fn state_after(endpoints: &Endpoints, wait: Duration) -> BreakerState {
        tokio::time::sleep(wait).await;
        endpoints.breaker_states()[0].1
    }

    #[tokio::test]
    async fn the_health_check_readmits_an_instance_once_it_is_ready() {
        let (url, status) = instance(503).await;
        let endpoints = Endpoints::new("catalog", vec![url]);
        eject(&endpoints);
        // Not ready: still ejected after several checks.
        assert_eq!(
            state_after(&endpoints, HEALTH_CHECK_EVERY * 4).await,
            BreakerState::Open
        );
        status.store(200, Ordering::SeqCst);
        assert_eq!(
            state_after(&endpoints, HEALTH_CHECK_EVERY * 4).await,
            BreakerState::Closed,
            "readmitted long before its ten-minute ejection ends"
        );
        // Nothing is ejected, so the task has ended; a new ejection starts it again.
        tokio::time::sleep(HEALTH_CHECK_EVERY * 2).await;
        assert!(!endpoints.inner.watching.load(Ordering::Acquire));
        eject(&endpoints);
        assert!(endpoints.inner.watching.load(Ordering::Acquire));
        assert_eq!(
            state_after(&endpoints, HEALTH_CHECK_EVERY * 4).await,
            BreakerState::Closed
        );
    }

    #[tokio::test]
    async fn a_silent_instance_stays_ejected() {
        // Accepts connections and never answers, like a frozen process.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoints = Endpoints::new(
            "catalog",
            vec![url(&format!("http://{}", listener.local_addr().unwrap()))],
        );
        eject(&endpoints);
        assert_eq!(
            state_after(&endpoints, HEALTH_CHECK_LIMIT * 3).await,
            BreakerState::Open
        );
        drop(listener);
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 1,
            open_for: Duration::from_secs(5),
            open_max: Duration::from_secs(5),
        }
    }

    #[test]
    fn set_replaces_the_list_and_drops_duplicates() {
        let endpoints = Endpoints::new("catalog", vec![url("http://a:1"), url("http://a:1")]);
        assert_eq!(endpoints.urls(), vec![url("http://a:1")]);
        let before = endpoints.version();
        endpoints.set(vec![url("http://b:1"), url("http://c:1")]);
        assert_eq!(endpoints.urls(), vec![url("http://b:1"), url("http://c:1")]);
        assert!(endpoints.version() > before);
        assert_eq!(endpoints.service(), "catalog");
    }

    #[tokio::test(start_paused = true)]
    async fn set_keeps_breaker_state_of_urls_that_stay() {
        let endpoints = Endpoints::new("catalog", vec![url("http://a:1")]);
        endpoints.pick(policy(), None).unwrap().failure();
        endpoints.set(vec![url("http://a:1"), url("http://b:1")]);
        let states: HashMap<Url, BreakerState> = endpoints.breaker_states().into_iter().collect();
        assert_eq!(states[&url("http://a:1")], BreakerState::Open);
        assert_eq!(states[&url("http://b:1")], BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_list_and_all_open_fail_fast() {
        let empty = Endpoints::new("catalog", vec![]);
        assert!(matches!(
            empty.pick(policy(), None),
            Err(CallError::NoEndpoints { .. })
        ));

        let endpoints = Endpoints::new("catalog", vec![url("http://a:1")]);
        endpoints.pick(policy(), None).unwrap().failure();
        assert!(matches!(
            endpoints.pick(policy(), None),
            Err(CallError::CircuitOpen { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_only_admitted_endpoint_is_always_found() {
        let urls: Vec<Url> = (1..=4)
            .map(|port| url(&format!("http://e:{port}")))
            .collect();
        let endpoints = Endpoints::new("catalog", urls.clone());
        // Open every breaker but the last by failing calls until three are open.
        while endpoints
            .breaker_states()
            .iter()
            .filter(|(_, s)| *s == BreakerState::Open)
            .count()
            < 3
        {
            let lease = endpoints.pick(policy(), None).unwrap();
            if lease.url() == &urls[3] {
                lease.success()
            } else {
                lease.failure()
            }
        }
        // Random pairs of open endpoints must not make the call fail.
        for _ in 0..100 {
            let lease = endpoints
                .pick(policy(), None)
                .expect("one endpoint is admitted");
            assert_eq!(lease.url(), &urls[3]);
            lease.success();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn prefers_the_endpoint_with_fewer_calls_in_flight() {
        let endpoints = Endpoints::new("catalog", vec![url("http://a:1"), url("http://b:1")]);
        let busy = endpoints.pick(policy(), None).unwrap();
        let busy_url = busy.url().clone();
        // With two endpoints both are always the two choices, so the idle one must win.
        for _ in 0..50 {
            let lease = endpoints.pick(policy(), None).unwrap();
            assert_ne!(lease.url(), &busy_url);
            lease.success();
        }
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn avoid_skips_the_failed_endpoint_when_another_is_admitted() {
        let endpoints = Endpoints::new("catalog", vec![url("http://a:1"), url("http://b:1")]);
        for _ in 0..50 {
            let lease = endpoints.pick(policy(), Some(&url("http://a:1"))).unwrap();
            assert_eq!(lease.url(), &url("http://b:1"));
        }
        let single = Endpoints::new("catalog", vec![url("http://a:1")]);
        assert_eq!(
            single
                .pick(policy(), Some(&url("http://a:1")))
                .unwrap()
                .url(),
            &url("http://a:1")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_lease_releases_in_flight_and_probe() {
        let endpoints = Endpoints::new("catalog", vec![url("http://a:1")]);
        endpoints.pick(policy(), None).unwrap().failure();
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = endpoints.pick(policy(), None).unwrap();
        assert!(matches!(
            endpoints.pick(policy(), None),
            Err(CallError::CircuitOpen { .. })
        ));
        assert_eq!(endpoints.snapshot()[0].in_flight.load(Ordering::Relaxed), 1);
        drop(probe);
        assert_eq!(endpoints.snapshot()[0].in_flight.load(Ordering::Relaxed), 0);
        assert!(endpoints.pick(policy(), None).is_ok());
    }
}
