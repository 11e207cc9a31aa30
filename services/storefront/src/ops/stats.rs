//! What the console computes from an instance's metrics: request rate,
//! share of 5xx answers and p99 latency over the time since an earlier
//! scrape (remembered in [`History`]), and consumer lag per group.
//!
//! The platform's own monitoring traffic (`/metrics`, `/readyz`,
//! `/healthz`, gRPC health and `Instance/Describe`) is left out: the
//! console and the gateway's status cause it, and counting it would show an
//! idle fleet as busy.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::metrics::Sample;

/// Requests answered, by route, method and status class.
const REQUESTS: &str = "http_requests_total";
/// Requests answered with a 5xx (used when the counter has no status label).
const ERRORS: &str = "http_request_errors_total";
/// The latency histogram's buckets.
const BUCKETS: &str = "http_request_duration_seconds_bucket";
/// A consumer group's events not yet acked (a gauge).
const LAG: &str = "events_consumer_lag";
/// Events a group moved to the dead-letter topic.
const DEAD_LETTERED: &str = "events_dead_lettered_total";
/// Deliveries that were not the first attempt.
const REDELIVERED: &str = "events_redelivered_total";

/// The shortest time between two scrapes worth a rate: closer ones (two
/// people watching at once) are compared with an older scrape.
const MIN_GAP: Duration = Duration::from_secs(1);
/// How long scrapes are remembered.
const KEEP: Duration = Duration::from_secs(60);
/// At most this many scrapes are remembered per instance.
const KEEP_COUNT: usize = 64;

/// Whether `route` is the platform's monitoring traffic.
fn is_monitoring(route: &str) -> bool {
    matches!(route, "/metrics" | "/readyz" | "/healthz")
        || route.starts_with("/grpc.health.v1.Health/")
        || route.starts_with("/bazaar.platform.v1.Instance/")
}

/// The request counters of one scrape, monitoring traffic left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Requests answered.
    pub requests: f64,
    /// Of which with a 5xx status.
    pub errors: f64,
    /// The latency histogram summed over routes: `(le, cumulative count)`,
    /// by `le` ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
}

impl Counts {
    /// The counters in `samples` (one instance's metrics).
    pub fn from_samples(samples: &[Sample]) -> Self {
        let counted = |s: &&Sample| !s.label("route").is_some_and(is_monitoring);
        let mut counts = Self::default();
        let mut with_status = false;
        let mut error_counter = 0.0;
        for s in samples.iter().filter(counted) {
            if !s.value.is_finite() {
                continue;
            }
            match s.name.as_str() {
                REQUESTS => {
                    counts.requests += s.value;
                    if let Some(status) = s.label("status") {
                        with_status = true;
                        if status.starts_with('5') {
                            counts.errors += s.value;
                        }
                    }
                }
                ERRORS => error_counter += s.value,
                BUCKETS => {
                    let Some(le) = s.label("le").and_then(le) else {
                        continue;
                    };
                    match counts.buckets.iter_mut().find(|(l, _)| *l == le) {
                        Some((_, count)) => *count += s.value,
                        None => counts.buckets.push((le, s.value)),
                    }
                }
                _ => {}
            }
        }
        if !with_status {
            counts.errors = error_counter;
        }
        counts.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        counts
    }

    /// What was counted since `earlier`; `None` when a counter went down
    /// (the process restarted).
    fn since(&self, earlier: &Self) -> Option<Self> {
        let minus = |now: f64, then: f64| (now >= then).then_some(now - then);
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, count)| {
                let then = earlier
                    .buckets
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map_or(0.0, |(_, c)| *c);
                minus(count, then).map(|c| (le, c))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            requests: minus(self.requests, earlier.requests)?,
            errors: minus(self.errors, earlier.errors)?,
            buckets,
        })
    }
}

/// A bucket bound: a number or `+Inf`.
fn le(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => text.parse().ok().filter(|v: &f64| !v.is_nan()),
    }
}

/// One scrape of one instance.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// When it was taken.
    pub at: Instant,
    /// What it counted.
    pub counts: Counts,
}

/// A latency quantile estimated from histogram buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantile {
    /// About this many seconds.
    At(f64),
    /// Beyond the largest bucket: more than this many seconds.
    Above(f64),
}

/// The `q` quantile of cumulative `buckets` (by `le` ascending, `+Inf`
/// last), interpolated linearly inside its bucket as Prometheus's
/// `histogram_quantile` does; `None` with nothing counted.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<Quantile> {
    let total = buckets.last()?.1;
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank && count > below {
            if le.is_infinite() {
                return Some(Quantile::Above(lower));
            }
            return Some(Quantile::At(
                lower + (le - lower) * (rank - below) / (count - below),
            ));
        }
        lower = le;
        below = below.max(count);
    }
    None
}

/// The figures of one instance shown in the fleet table.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Requests per second.
    pub rate: Option<f64>,
    /// Share of requests answered with a 5xx (0..=1); `None` without requests.
    pub errors: Option<f64>,
    /// p99 latency.
    pub p99: Option<Quantile>,
    /// Seconds the figures cover, when measured between two scrapes;
    /// `None` when they are since the process started.
    pub window: Option<f64>,
}

/// The figures of `now` against the earlier scrape `base`; without one (or
/// after a restart) cumulative since the process started, the rate over
/// `uptime` seconds when known.
pub fn figures(now: &Scrape, base: Option<&Scrape>, uptime: Option<u64>) -> Figures {
    let window = base.and_then(|base| {
        let seconds = now.at.checked_duration_since(base.at)?.as_secs_f64();
        let counts = now.counts.since(&base.counts)?;
        (seconds > 0.0).then_some((seconds, counts))
    });
    let (rate, counts, window) = match window {
        Some((seconds, counts)) => (Some(counts.requests / seconds), counts, Some(seconds)),
        None => {
            #[allow(clippy::cast_precision_loss)] // uptimes are far below 2^52 s
            let rate = uptime
                .filter(|&u| u > 0)
                .map(|u| now.counts.requests / u as f64);
            (rate, now.counts.clone(), None)
        }
    };
    Figures {
        rate,
        errors: (counts.requests > 0.0).then(|| counts.errors / counts.requests),
        p99: quantile(0.99, &counts.buckets),
        window,
    }
}

/// Earlier scrapes of every instance, by its URL.
#[derive(Debug, Default)]
pub struct History {
    scrapes: HashMap<String, VecDeque<Scrape>>,
}

impl History {
    /// Remembers `scrape` of `instance` and answers the earlier scrape to
    /// compare it with: the newest at least [`MIN_GAP`] older.
    pub fn record(&mut self, instance: &str, scrape: Scrape) -> Option<Scrape> {
        let at = scrape.at;
        let list = self.scrapes.entry(instance.to_owned()).or_default();
        list.retain(|s| at.checked_duration_since(s.at).is_some_and(|d| d <= KEEP));
        let base = list
            .iter()
            .rev()
            .find(|s| {
                at.checked_duration_since(s.at)
                    .is_some_and(|d| d >= MIN_GAP)
            })
            .cloned();
        list.push_back(scrape);
        while list.len() > KEEP_COUNT {
            list.pop_front();
        }
        base
    }

    /// Forgets instances not in `current` (gone from the fleet).
    pub fn keep_only(&mut self, current: &HashSet<String>) {
        self.scrapes.retain(|k, _| current.contains(k));
    }
}

/// One consumer group's backlog, over the instances of its service.
#[derive(Debug, Clone, PartialEq)]
pub struct LagRow {
    /// The service whose instances consume.
    pub service: String,
    /// The consumer group.
    pub group: String,
    /// The topic, when the metric is labelled with one.
    pub topic: Option<String>,
    /// Events not yet acked: the largest any instance reports (each
    /// reads the same group's backlog from the broker).
    pub lag: Option<f64>,
    /// Events moved to the dead-letter topic, summed over instances.
    pub dead_lettered: f64,
    /// Redeliveries, summed over instances.
    pub redelivered: f64,
    /// How many instances report the group.
    pub instances: usize,
}

/// Service, group and topic.
type GroupKey = (String, String, Option<String>);

/// The consumer groups in the metrics of every instance (`service`,
/// samples), by service, group and topic.
pub fn lag_rows<'a>(instances: impl IntoIterator<Item = (&'a str, &'a [Sample])>) -> Vec<LagRow> {
    // By service, group and topic: the row and which instances reported it.
    let mut rows: BTreeMap<GroupKey, (LagRow, HashSet<usize>)> = BTreeMap::new();
    for (index, (service, samples)) in instances.into_iter().enumerate() {
        for s in samples {
            if !matches!(s.name.as_str(), LAG | DEAD_LETTERED | REDELIVERED) || !s.value.is_finite()
            {
                continue;
            }
            let Some(group) = s.label("group") else {
                continue;
            };
            let topic = s.label("topic").map(str::to_owned);
            let key = (service.to_owned(), group.to_owned(), topic.clone());
            let (row, seen) = rows.entry(key).or_insert_with(|| {
                (
                    LagRow {
                        service: service.to_owned(),
                        group: group.to_owned(),
                        topic,
                        lag: None,
                        dead_lettered: 0.0,
                        redelivered: 0.0,
                        instances: 0,
                    },
                    HashSet::new(),
                )
            });
            seen.insert(index);
            match s.name.as_str() {
                LAG => row.lag = Some(row.lag.map_or(s.value, |l| l.max(s.value))),
                DEAD_LETTERED => row.dead_lettered += s.value,
                _ => row.redelivered += s.value,
            }
        }
    }
    rows.into_values()
        .map(|(mut row, seen)| {
            row.instances = seen.len();
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::metrics::parse;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    const TEXT: &str = r#"
http_requests_total{route="/a",method="GET",status="2xx"} 90
http_requests_total{route="/a",method="GET",status="5xx"} 10
http_requests_total{route="/readyz",method="GET",status="2xx"} 500
http_request_errors_total{route="/a",method="GET"} 10
http_request_duration_seconds_bucket{route="/a",method="GET",le="0.1"} 50
http_request_duration_seconds_bucket{route="/a",method="GET",le="0.2"} 90
http_request_duration_seconds_bucket{route="/a",method="GET",le="0.4"} 100
http_request_duration_seconds_bucket{route="/a",method="GET",le="+Inf"} 100
http_request_duration_seconds_bucket{route="/readyz",method="GET",le="0.1"} 500
http_request_duration_seconds_bucket{route="/readyz",method="GET",le="0.2"} 500
http_request_duration_seconds_bucket{route="/readyz",method="GET",le="0.4"} 500
http_request_duration_seconds_bucket{route="/readyz",method="GET",le="+Inf"} 500
"#;

    #[test]
    fn counts_leave_monitoring_out_and_sum_routes() {
        let counts = Counts::from_samples(&parse(TEXT));
        assert!(close(counts.requests, 100.0));
        assert!(close(counts.errors, 10.0));
        assert_eq!(
            counts.buckets,
            vec![
                (0.1, 50.0),
                (0.2, 90.0),
                (0.4, 100.0),
                (f64::INFINITY, 100.0)
            ]
        );
        let two_routes = format!(
            "{TEXT}\nhttp_request_duration_seconds_bucket{{route=\"/b\",le=\"0.2\"}} 4\nhttp_request_duration_seconds_bucket{{route=\"/b\",le=\"+Inf\"}} 4\n"
        );
        let counts = Counts::from_samples(&parse(&two_routes));
        assert_eq!(counts.buckets[1], (0.2, 94.0));
        assert_eq!(counts.buckets[3], (f64::INFINITY, 104.0));
    }

    #[test]
    fn errors_come_from_the_error_counter_without_a_status_label() {
        let counts = Counts::from_samples(&parse(
            "http_requests_total{route=\"/a\"} 40\nhttp_request_errors_total{route=\"/a\"} 4\n",
        ));
        assert!(close(counts.errors, 4.0));
    }

    #[test]
    fn p99_interpolates_inside_its_bucket() {
        let buckets = [
            (0.1, 50.0),
            (0.2, 90.0),
            (0.4, 100.0),
            (f64::INFINITY, 100.0),
        ];
        // Rank 99 of 100 lies 9/10 of the way through (0.2, 0.4].
        let Some(Quantile::At(p99)) = quantile(0.99, &buckets) else {
            panic!("a p99");
        };
        assert!(close(p99, 0.38), "{p99}");
        let Some(Quantile::At(p50)) = quantile(0.5, &buckets) else {
            panic!("a p50");
        };
        assert!(close(p50, 0.1), "{p50}");
        // Every request in the first bucket: interpolated from zero.
        let Some(Quantile::At(low)) = quantile(0.99, &[(0.1, 10.0), (f64::INFINITY, 10.0)]) else {
            panic!("a p99");
        };
        assert!(close(low, 0.099), "{low}");
    }

    #[test]
    fn p99_beyond_the_last_bucket_is_a_lower_bound() {
        let buckets = [(0.1, 50.0), (3.2768, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.99, &buckets), Some(Quantile::Above(3.2768)));
    }

    #[test]
    fn p99_of_nothing_is_unknown() {
        assert_eq!(quantile(0.99, &[]), None);
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    fn scrape(at: Instant, requests: f64, errors: f64, fast: f64, slow: f64) -> Scrape {
        Scrape {
            at,
            counts: Counts {
                requests,
                errors,
                buckets: vec![
                    (0.01, fast),
                    (1.0, fast + slow),
                    (f64::INFINITY, fast + slow),
                ],
            },
        }
    }

    #[test]
    fn figures_between_two_scrapes_use_the_difference() {
        let t0 = Instant::now();
        let before = scrape(t0, 1000.0, 0.0, 1000.0, 0.0);
        // 2 s later: 100 more requests, 10 of them 5xx, all of them slow.
        let now = scrape(t0 + Duration::from_secs(2), 1100.0, 10.0, 1000.0, 100.0);
        let f = figures(&now, Some(&before), Some(500));
        assert!(close(f.rate.unwrap(), 50.0));
        assert!(close(f.errors.unwrap(), 0.1));
        let Some(Quantile::At(p99)) = f.p99 else {
            panic!("a p99");
        };
        assert!(p99 > 0.9, "the window's requests were slow: {p99}");
        assert_eq!(f.window, Some(2.0));
    }

    #[test]
    fn figures_without_an_earlier_scrape_are_since_start() {
        let now = scrape(Instant::now(), 600.0, 6.0, 600.0, 0.0);
        let f = figures(&now, None, Some(60));
        assert!(close(f.rate.unwrap(), 10.0));
        assert!(close(f.errors.unwrap(), 0.01));
        assert!(matches!(f.p99, Some(Quantile::At(p)) if p <= 0.01));
        assert_eq!(f.window, None);
        assert_eq!(figures(&now, None, None).rate, None);
    }

    #[test]
    fn a_restart_falls_back_to_since_start() {
        let t0 = Instant::now();
        let before = scrape(t0, 1000.0, 0.0, 1000.0, 0.0);
        let now = scrape(t0 + Duration::from_secs(2), 20.0, 0.0, 20.0, 0.0);
        let f = figures(&now, Some(&before), Some(4));
        assert!(close(f.rate.unwrap(), 5.0));
        assert_eq!(f.window, None);
    }

    #[test]
    fn an_idle_window_has_a_rate_of_zero_and_no_error_share() {
        let t0 = Instant::now();
        let before = scrape(t0, 10.0, 0.0, 10.0, 0.0);
        let now = scrape(t0 + Duration::from_secs(3), 10.0, 0.0, 10.0, 0.0);
        let f = figures(&now, Some(&before), Some(100));
        assert_eq!(f.rate, Some(0.0));
        assert_eq!(f.errors, None);
        assert_eq!(f.p99, None);
    }

    #[test]
    fn history_compares_with_a_scrape_at_least_a_second_old() {
        let t0 = Instant::now();
        let mut history = History::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(
            history
                .record("a", scrape(at(0), 1.0, 0.0, 1.0, 0.0))
                .is_none()
        );
        // A second viewer 300 ms later: too close to the first scrape.
        assert!(
            history
                .record("a", scrape(at(300), 2.0, 0.0, 2.0, 0.0))
                .is_none()
        );
        let base = history.record("a", scrape(at(1300), 3.0, 0.0, 3.0, 0.0));
        assert_eq!(base.map(|s| s.at), Some(at(300)));
        let base = history.record("a", scrape(at(1500), 4.0, 0.0, 4.0, 0.0));
        assert_eq!(base.map(|s| s.at), Some(at(300)), "the newest old enough");
        // Another instance has its own history.
        assert!(
            history
                .record("b", scrape(at(1500), 1.0, 0.0, 1.0, 0.0))
                .is_none()
        );
        // Scrapes older than a minute are forgotten.
        assert!(
            history
                .record("a", scrape(at(90_000), 5.0, 0.0, 5.0, 0.0))
                .is_none()
        );
        history.keep_only(&HashSet::from(["b".to_owned()]));
        assert!(!history.scrapes.contains_key("a"));
        assert!(history.scrapes.contains_key("b"));
    }

    #[test]
    fn lag_is_per_group_the_largest_over_instances() {
        let a = parse(
            "events_consumer_lag{group=\"inventory\"} 3\nevents_dead_lettered_total{group=\"inventory\"} 1\nevents_consumer_lag{group=\"live\",topic=\"t\"} 0\nhttp_requests_total 5\n",
        );
        let b = parse(
            "events_consumer_lag{group=\"inventory\"} 7\nevents_dead_lettered_total{group=\"inventory\"} 2\nevents_redelivered_total{group=\"inventory\"} 4\n",
        );
        let rows = lag_rows([("inventory", a.as_slice()), ("inventory", b.as_slice())]);
        assert_eq!(rows.len(), 2);
        let inventory = &rows[0];
        assert_eq!(inventory.group, "inventory");
        assert_eq!(inventory.lag, Some(7.0));
        assert!(close(inventory.dead_lettered, 3.0));
        assert!(close(inventory.redelivered, 4.0));
        assert_eq!(inventory.instances, 2);
        assert_eq!(rows[1].topic.as_deref(), Some("t"));
        assert_eq!(rows[1].instances, 1);
    }
}
