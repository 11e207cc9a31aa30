//! The protocol-free core: permit, pick, bounded attempt, classified retry.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use url::Url;

use super::{CallError, Endpoints, Policy, lock};

/// Whether repeating a call could do its side effect twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to repeat: reads, and writes keyed by an idempotency key or order id.
    Idempotent,
    /// Not safe to repeat; retried only when the request provably never left.
    NonIdempotent,
}

impl Idempotency {
    /// What RFC 9110 says about the method: GET, HEAD, OPTIONS, TRACE, PUT
    /// and DELETE are idempotent; POST and PATCH are not.
    pub fn of_method(method: &http::Method) -> Self {
        use http::Method;
        match *method {
            Method::GET
            | Method::HEAD
            | Method::OPTIONS
            | Method::TRACE
            | Method::PUT
            | Method::DELETE => Self::Idempotent,
            _ => Self::NonIdempotent,
        }
    }

    /// Whether this is [`Idempotency::Idempotent`].
    pub fn is_idempotent(self) -> bool {
        self == Self::Idempotent
    }
}

impl From<bool> for Idempotency {
    fn from(idempotent: bool) -> Self {
        if idempotent {
            Self::Idempotent
        } else {
            Self::NonIdempotent
        }
    }
}

/// When a failed attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Never: repeating would give the same answer.
    Never,
    /// Only for idempotent calls: the upstream may have acted on the request.
    IfIdempotent,
    /// For any call: the request provably never reached the upstream.
    Always,
}

/// A failed attempt, classified by the protocol wrapper.
#[derive(Debug)]
pub struct Failure {
    /// The error the call ends with if it is not retried.
    pub error: CallError,
    /// Whether another attempt may be made.
    pub retry: Retry,
    /// Whether this counts against the endpoint's circuit breaker; a failure
    /// that does not count is an answer, and proves the endpoint alive.
    pub breaker: bool,
}

impl Failure {
    /// The request never left (connection refused, connect timeout): retry any call.
    pub fn not_sent(error: CallError) -> Self {
        Self {
            error,
            retry: Retry::Always,
            breaker: true,
        }
    }

    /// The upstream failed after the request may have reached it: retry idempotent calls.
    pub fn transient(error: CallError) -> Self {
        Self {
            error,
            retry: Retry::IfIdempotent,
            breaker: true,
        }
    }

    /// A definite answer that another attempt would not change; the endpoint is fine.
    pub fn permanent(error: CallError) -> Self {
        Self {
            error,
            retry: Retry::Never,
            breaker: false,
        }
    }

    /// Sets whether this failure counts against the endpoint's breaker.
    pub fn counting(mut self, breaker: bool) -> Self {
        self.breaker = breaker;
        self
    }
}

/// Where and by when one attempt must be made.
#[derive(Debug, Clone)]
pub struct Target {
    /// The endpoint chosen for this attempt.
    pub url: Url,
    /// When this attempt will be cut off.
    pub deadline: Instant,
    /// 0 for the first attempt, 1 for the first retry, ...
    pub attempt: u32,
    /// The upstream service, for building a [`CallError`].
    pub service: Arc<str>,
}

impl Target {
    /// Time left for this attempt; hand it to the upstream (`grpc-timeout`) so
    /// it stops working on an answer nobody waits for.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The resilient call path to one upstream service; HTTP and gRPC clients wrap it.
///
/// Clones share the concurrency limit and the endpoints.
#[derive(Clone)]
pub struct Stack {
    endpoints: Endpoints,
    policy: Arc<Policy>,
    limit: Arc<Semaphore>,
    budget: Arc<Budget>,
}

/// Tokens for retries: every call adds `percent / 100` of one, time adds
/// `floor` per second, a retry takes one. When an upstream fails outright,
/// its callers' retries add at most that much load to it.
#[derive(Debug)]
struct Budget {
    per_call: f64,
    per_second: f64,
    cap: f64,
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    fn new(policy: &Policy) -> Self {
        let per_second = f64::from(policy.retry_budget_floor);
        // Ten seconds of the floor, or a hundred calls' worth, saved up at most.
        let cap = (per_second * 10.0).max(f64::from(policy.retry_budget_percent));
        Self {
            per_call: f64::from(policy.retry_budget_percent) / 100.0,
            per_second,
            cap,
            state: Mutex::new((cap, Instant::now())),
        }
    }

    fn deposit(&self) {
        let mut state = lock(&self.state);
        state.0 = (state.0 + self.per_call).min(self.cap);
    }

    fn withdraw(&self) -> bool {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let earned = now.saturating_duration_since(state.1).as_secs_f64() * self.per_second;
        state.0 = (state.0 + earned).min(self.cap);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("endpoints", &self.endpoints)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// A stack over `endpoints` that behaves as `policy` says.
    pub fn new(endpoints: Endpoints, policy: Policy) -> Self {
        let limit = Arc::new(Semaphore::new(policy.concurrency.max(1)));
        let budget = Arc::new(Budget::new(&policy));
        Self {
            endpoints,
            policy: Arc::new(policy),
            limit,
            budget,
        }
    }

    /// The upstream's instances.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// How calls behave.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Makes one call: `attempt` performs a single try against the given
    /// [`Target`] and classifies its failure; the stack does the rest.
    ///
    /// The call ends at the first success, at a failure that may not be
    /// retried, when retries are used up, or at the deadline; a failure that
    /// ends the call is returned as it was, while a cut-off attempt becomes
    /// [`CallError::Timeout`].
    pub async fn call<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(Target) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let service = self.endpoints.service_arc();
        let deadline = Instant::now() + self.policy.deadline;
        let Ok(Ok(_permit)) = timeout_at(deadline, self.limit.acquire()).await else {
            tracing::debug!(service = %service, "No call permit before the deadline.");
            return Err(CallError::Overloaded { service });
        };
        self.budget.deposit();

        let mut last_error: Option<CallError> = None;
        let mut avoid: Option<Url> = None;
        let mut number = 0;
        loop {
            let lease = match self.endpoints.pick(self.policy.breaker, avoid.as_ref()) {
                Ok(lease) => lease,
                // Breakers opening mid-call: the failure that opened them says more.
                Err(error) => return Err(last_error.unwrap_or(error)),
            };
            let attempt_deadline = match self.policy.attempt_timeout {
                Some(limit) => (Instant::now() + limit).min(deadline),
                None => deadline,
            };
            let target = Target {
                url: lease.url().clone(),
                deadline: attempt_deadline,
                attempt: number,
                service: service.clone(),
            };
            let failure = match timeout_at(attempt_deadline, attempt(target)).await {
                Ok(Ok(value)) => {
                    lease.success();
                    return Ok(value);
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure::transient(CallError::Timeout {
                    service: service.clone(),
                }),
            };
            let url = lease.url().clone();
            if failure.breaker {
                lease.failure();
            } else {
                lease.success();
            }

            let may_retry = match failure.retry {
                Retry::Never => false,
                Retry::IfIdempotent => idempotency.is_idempotent(),
                Retry::Always => true,
            };
            if !may_retry || number >= self.policy.max_retries {
                return Err(failure.error);
            }
            // The first retry goes at once when another instance can take
            // it; a retry of the same instance waits, with jitter.
            let pause = if number == 0 && self.endpoints.admits_other(&url) {
                Duration::ZERO
            } else {
                self.policy.backoff(number)
            };
            if Instant::now() + pause >= deadline {
                return Err(failure.error);
            }
            if !self.budget.withdraw() {
                tracing::debug!(service = %service, error = %failure.error, "Retry budget spent; not retrying.");
                return Err(failure.error);
            }
            tracing::debug!(
                service = %service,
                %url,
                attempt = number,
                backoff_ms = pause.as_millis() as u64,
                error = %failure.error,
                "Retrying call."
            );
            last_error = Some(failure.error);
            avoid = Some(url);
            tokio::time::sleep(pause).await;
            number += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::super::{BreakerPolicy, BreakerState};
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn quick_policy() -> Policy {
        Policy {
            deadline: Duration::from_secs(2),
            max_retries: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
            breaker: BreakerPolicy {
                failures: 3,
                open_for: Duration::from_secs(5),
                open_max: Duration::from_secs(5),
            },
            ..Policy::default()
        }
    }

    fn stack(urls: &[&str], policy: Policy) -> Stack {
        Stack::new(
            Endpoints::new("inventory", urls.iter().map(|u| url(u)).collect()),
            policy,
        )
    }

    fn unavailable(target: &Target) -> CallError {
        CallError::Unavailable {
            service: target.service.clone(),
            detail: "test".into(),
        }
    }

    fn status_503(target: &Target) -> CallError {
        CallError::Status {
            service: target.service.clone(),
            status: super::super::UpstreamStatus::Http(http::StatusCode::SERVICE_UNAVAILABLE),
            message: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_then_succeeds_with_jittered_pauses() {
        let stack = stack(&["http://a:1"], quick_policy());
        let calls = AtomicU32::new(0);
        let times = Mutex::new(Vec::new());
        let result = stack
            .call(Idempotency::Idempotent, |target| {
                times.lock().unwrap().push(Instant::now());
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(target.attempt, n);
                    if n < 2 {
                        Err(Failure::transient(status_503(&target)))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let times = times.into_inner().unwrap();
        for (retry, pair) in times.windows(2).enumerate() {
            let pause = pair[1] - pair[0];
            assert!(
                pause <= stack.policy().backoff_ceiling(retry as u32),
                "pause {pause:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries_with_the_last_error() {
        let stack = stack(
            &["http://a:1", "http://b:1"],
            Policy {
                breaker: BreakerPolicy {
                    failures: 100,
                    ..BreakerPolicy::default()
                },
                ..quick_policy()
            },
        );
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = stack
            .call(Idempotency::Idempotent, |target| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Err(Failure::transient(status_503(&target))) }
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4, "1 attempt + max_retries");
        assert_eq!(
            result.unwrap_err().http_status(),
            Some(http::StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let stack = stack(&["http://a:1"], quick_policy());
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = stack
            .call(Idempotency::Idempotent, |target| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    Err(Failure::permanent(CallError::InvalidRequest {
                        service: target.service,
                        detail: "bad".into(),
                    }))
                }
            })
            .await;
        assert!(matches!(result, Err(CallError::InvalidRequest { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // It was an answer, so the breaker does not hold it against the endpoint.
        assert_eq!(
            stack.endpoints().breaker_states()[0].1,
            BreakerState::Closed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn non_idempotent_is_not_retried_after_the_request_may_have_arrived() {
        let stack = stack(&["http://a:1"], quick_policy());
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = stack
            .call(Idempotency::NonIdempotent, |target| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Err(Failure::transient(status_503(&target))) }
            })
            .await;
        assert!(matches!(result, Err(CallError::Status { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn non_idempotent_is_retried_when_the_request_never_left() {
        let stack = stack(&["http://a:1"], quick_policy());
        let calls = AtomicU32::new(0);
        let result = stack
            .call(Idempotency::NonIdempotent, |target| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(Failure::not_sent(unavailable(&target)))
                    } else {
                        Ok("done")
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_stops_retries() {
        let stack = stack(
            &["http://a:1"],
            Policy {
                deadline: Duration::from_secs(1),
                max_retries: 1_000,
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_millis(100),
                breaker: BreakerPolicy {
                    failures: 10_000,
                    ..BreakerPolicy::default()
                },
                ..quick_policy()
            },
        );
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), _> = stack
            .call(Idempotency::Idempotent, |target| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    Err(Failure::transient(status_503(&target)))
                }
            })
            .await;
        assert!(result.is_err());
        assert!(
            start.elapsed() <= Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        let calls = calls.load(Ordering::SeqCst);
        // 150 ms per attempt plus up to 100 ms of backoff: between 4 and 7 fit in a second.
        assert!((4..=7).contains(&calls), "{calls} attempts");
    }

    #[tokio::test(start_paused = true)]
    async fn hung_attempt_ends_in_timeout_at_the_deadline() {
        let stack = stack(&["http://a:1"], quick_policy());
        let start = Instant::now();
        let result: Result<(), _> = stack
            .call(Idempotency::Idempotent, |_| std::future::pending())
            .await;
        assert!(
            matches!(result, Err(CallError::Timeout { .. })),
            "{result:?}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_timeout_leaves_time_to_retry_elsewhere() {
        let stack = stack(
            &["http://hung:1", "http://ok:1"],
            Policy {
                attempt_timeout: Some(Duration::from_millis(300)),
                ..quick_policy()
            },
        );
        let result = stack
            .call(Idempotency::Idempotent, |target| async move {
                if target.url.host_str() == Some("hung") {
                    std::future::pending::<()>().await;
                }
                Ok(target.url)
            })
            .await;
        assert_eq!(result.unwrap(), url("http://ok:1"));
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_then_fails_fast_then_probes_after_open_for() {
        let stack = stack(
            &["http://a:1"],
            Policy {
                max_retries: 0,
                ..quick_policy()
            },
        );
        let calls = AtomicU32::new(0);
        let failing = |target: Target| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(Failure::transient(unavailable(&target))) }
        };
        for _ in 0..3 {
            let result = stack.call(Idempotency::Idempotent, failing).await;
            assert!(matches!(result, Err(CallError::Unavailable { .. })));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let start = Instant::now();
        let result = stack.call(Idempotency::Idempotent, failing).await;
        assert!(
            matches!(result, Err(CallError::CircuitOpen { .. })),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3, "f must not run while open");
        assert_eq!(start.elapsed(), Duration::ZERO, "fails fast");

        tokio::time::advance(Duration::from_secs(5)).await;
        let probed = stack
            .call(Idempotency::Idempotent, |_| async {
                Ok::<_, Failure>("up")
            })
            .await;
        assert_eq!(probed.unwrap(), "up");
        assert_eq!(
            stack.endpoints().breaker_states()[0].1,
            BreakerState::Closed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn overloaded_when_no_permit_frees_up_before_the_deadline() {
        let stack = stack(
            &["http://a:1"],
            Policy {
                concurrency: 1,
                ..quick_policy()
            },
        );
        let _held = stack.limit.clone().acquire_owned().await.unwrap();
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result = stack
            .call(Idempotency::Idempotent, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Failure>(()) }
            })
            .await;
        assert!(
            matches!(result, Err(CallError::Overloaded { .. })),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_limit_wait_for_a_permit() {
        let stack = stack(
            &["http://a:1"],
            Policy {
                concurrency: 1,
                ..quick_policy()
            },
        );
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (entered, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let stack = stack.clone();
            async move {
                let mut signals = Some((entered, released));
                stack
                    .call(Idempotency::Idempotent, move |_| {
                        let signals = signals.take();
                        async move {
                            let (entered, released) = signals.expect("one attempt");
                            entered.send(()).unwrap();
                            released.await.unwrap();
                            Ok::<_, Failure>(1)
                        }
                    })
                    .await
            }
        });
        entered_rx.await.unwrap();

        let second_ran = Arc::new(AtomicU32::new(0));
        let second = tokio::spawn({
            let stack = stack.clone();
            let second_ran = second_ran.clone();
            async move {
                stack
                    .call(Idempotency::Idempotent, move |_| {
                        second_ran.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, Failure>(2) }
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            second_ran.load(Ordering::SeqCst),
            0,
            "second call must wait"
        );
        assert!(!second.is_finished());

        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(second_ran.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_picks_an_endpoint_whose_breaker_is_open() {
        let stack = stack(
            &["http://bad:1", "http://b:1", "http://c:1"],
            Policy {
                max_retries: 0,
                breaker: BreakerPolicy {
                    failures: 1,
                    open_for: Duration::from_secs(60),
                    open_max: Duration::from_secs(60),
                },
                ..quick_policy()
            },
        );
        let hits: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
        let call = || {
            stack.call(Idempotency::Idempotent, |target| {
                let host = target.url.host_str().unwrap().to_owned();
                *hits.lock().unwrap().entry(host.clone()).or_default() += 1;
                async move {
                    if host == "bad" {
                        Err(Failure::transient(unavailable(&target)))
                    } else {
                        Ok(())
                    }
                }
            })
        };
        for _ in 0..1_000 {
            let _ = call().await;
            if hits.lock().unwrap().contains_key("bad") {
                break;
            }
        }
        assert_eq!(
            hits.lock().unwrap().get("bad"),
            Some(&1),
            "bad was never tried"
        );
        hits.lock().unwrap().clear();
        for _ in 0..300 {
            call().await.unwrap();
        }
        let hits = hits.into_inner().unwrap();
        assert_eq!(hits.get("bad"), None, "{hits:?}");
        assert!(hits["b"] > 0 && hits["c"] > 0, "{hits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn two_healthy_endpoints_both_get_traffic() {
        let stack = stack(&["http://a:1", "http://b:1"], quick_policy());
        let mut hits: HashMap<Url, u32> = HashMap::new();
        for _ in 0..200 {
            let url = stack
                .call(Idempotency::Idempotent, |t| async move { Ok(t.url) })
                .await
                .unwrap();
            *hits.entry(url).or_default() += 1;
        }
        assert!(hits[&url("http://a:1")] > 20, "{hits:?}");
        assert!(hits[&url("http://b:1")] > 20, "{hits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_goes_to_another_endpoint() {
        // Breakers stay closed here so that both endpoints remain candidates.
        let policy = Policy {
            breaker: BreakerPolicy {
                failures: 1_000,
                ..BreakerPolicy::default()
            },
            ..quick_policy()
        };
        let stack = stack(&["http://a:1", "http://b:1"], policy);
        for _ in 0..20 {
            let first = Mutex::new(None);
            let second = stack
                .call(Idempotency::Idempotent, |target| {
                    let is_first = first.lock().unwrap().is_none();
                    if is_first {
                        *first.lock().unwrap() = Some(target.url.clone());
                    }
                    async move {
                        if is_first {
                            Err(Failure::not_sent(unavailable(&target)))
                        } else {
                            Ok(target.url)
                        }
                    }
                })
                .await
                .unwrap();
            assert_ne!(Some(second), first.into_inner().unwrap());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn set_at_run_time_redirects_calls() {
        let stack = stack(&["http://old:1"], quick_policy());
        let host = |stack: &Stack| {
            let stack = stack.clone();
            async move {
                stack
                    .call(Idempotency::Idempotent, |t| async move {
                        Ok(t.url.host_str().unwrap().to_owned())
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(host(&stack).await, "old");
        stack.endpoints().set(vec![url("http://new:1")]);
        for _ in 0..20 {
            assert_eq!(host(&stack).await, "new");
        }
        stack.endpoints().set(vec![]);
        let result = stack
            .call(Idempotency::Idempotent, |_| async { Ok::<_, Failure>(()) })
            .await;
        assert!(matches!(result, Err(CallError::NoEndpoints { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_retry_goes_at_once_to_another_instance() {
        let stack = stack(
            &["http://a:1", "http://b:1"],
            Policy {
                backoff_base: Duration::from_secs(1),
                backoff_max: Duration::from_secs(1),
                breaker: BreakerPolicy {
                    failures: 1_000,
                    ..BreakerPolicy::default()
                },
                ..quick_policy()
            },
        );
        for _ in 0..20 {
            let start = Instant::now();
            let first = Mutex::new(None::<Url>);
            stack
                .call(Idempotency::Idempotent, |target| {
                    let mut first = first.lock().unwrap();
                    let again = first.is_some();
                    first.get_or_insert(target.url.clone());
                    async move {
                        if again {
                            Ok(())
                        } else {
                            Err(Failure::not_sent(unavailable(&target)))
                        }
                    }
                })
                .await
                .unwrap();
            assert_eq!(start.elapsed(), Duration::ZERO, "no pause before the retry");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_when_the_budget_is_spent() {
        let failing = |stack: Stack, calls: Arc<AtomicU32>| async move {
            stack
                .call(Idempotency::Idempotent, |target| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move { Err::<(), _>(Failure::transient(status_503(&target))) }
                })
                .await
        };
        let no_budget = Policy {
            retry_budget_percent: 0,
            retry_budget_floor: 0,
            breaker: BreakerPolicy {
                failures: 1_000,
                ..BreakerPolicy::default()
            },
            ..quick_policy()
        };
        let calls = Arc::new(AtomicU32::new(0));
        for _ in 0..10 {
            assert!(
                failing(stack(&["http://a:1"], no_budget.clone()), calls.clone())
                    .await
                    .is_err()
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            10,
            "one attempt each, no retry"
        );

        // 10 % of calls, no floor: 100 failing calls may retry about 10
        // times plus the saved-up cap, far from the 300 retries they want.
        let tight = stack(
            &["http://a:1"],
            Policy {
                retry_budget_percent: 10,
                ..no_budget
            },
        );
        let calls = Arc::new(AtomicU32::new(0));
        for _ in 0..100 {
            assert!(failing(tight.clone(), calls.clone()).await.is_err());
        }
        let attempts = calls.load(Ordering::SeqCst);
        assert!((110..=121).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn idempotency_of_methods() {
        assert!(Idempotency::of_method(&http::Method::GET).is_idempotent());
        assert!(Idempotency::of_method(&http::Method::PUT).is_idempotent());
        assert!(!Idempotency::of_method(&http::Method::POST).is_idempotent());
        assert!(!Idempotency::of_method(&http::Method::PATCH).is_idempotent());
        assert_eq!(Idempotency::from(false), Idempotency::NonIdempotent);
    }
}
