//! The instances of one upstream service, their breakers and load, and the
//! power-of-two-choices pick among them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
}

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
                    service: self.service_arc(),
                    admission,
                    policy,
                    settled: false,
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
    service: Arc<str>,
    admission: Admission,
    policy: BreakerPolicy,
    settled: bool,
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
            tracing::info!(service = %self.service, url = %self.node.url, ?state, "Circuit closed.");
        }
    }

    /// The endpoint failed in a way that should count against it.
    pub(crate) fn failure(mut self) {
        self.settled = true;
        let changed =
            lock(&self.node.breaker).on_failure(self.admission, Instant::now(), &self.policy);
        if let Some(state) = changed {
            tracing::warn!(
                service = %self.service,
                url = %self.node.url,
                ?state,
                open_for_ms = self.policy.open_for.as_millis() as u64,
                "Circuit opened."
            );
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 1,
            open_for: Duration::from_secs(5),
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
