//! The ops console at `/ops`, for role `admin`: the fleet, its instances'
//! health and metrics, broker lag and recent orders' sagas.
//!
//! One view fans out at once: the gateway's `/api/v1/status`, every
//! instance's own `/metrics` (the instances this storefront was told about,
//! so the scrapes need not wait for the status) and orders' recent orders.
//! Rates are computed against the scrapes the [`Console`] remembers.
//!
//! `/ops` is the whole page and works without JavaScript; `/ops/fleet` is
//! the live part alone, which `assets/ops.js` fetches every few seconds and
//! swaps in.

mod metrics;
mod stats;
mod view;

use bazaar_events::money::Money;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use futures_util::future::join_all;
use maud::Markup;
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::App;
use crate::backend::Backend;
use crate::error::PageError;
use crate::layout::{self, Chrome};
use crate::session::{Session, User};

use self::metrics::Sample;
use self::stats::{Counts, Figures, History, LagRow, Scrape};

/// How long one instance may take to answer `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The largest `/metrics` answer read.
const SCRAPE_LIMIT: usize = 4 * 1024 * 1024;
/// How many recent orders are shown.
const RECENT_ORDERS: usize = 10;

/// The console's state: the backend clients and the scrapes it remembers.
#[derive(Clone, Debug)]
pub struct Console {
    backend: Backend,
    /// Scrapes every instance's `/metrics` (one instance at a time, unlike
    /// the backend's balanced clients).
    http: reqwest::Client,
    history: Arc<Mutex<History>>,
}

impl Console {
    /// A console over the services `backend` knows.
    pub fn new(backend: Backend) -> Self {
        let http = reqwest::Client::builder()
            .timeout(SCRAPE_TIMEOUT)
            .connect_timeout(SCRAPE_TIMEOUT)
            // Instances are reached directly, never through a proxy.
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            backend,
            http,
            history: Arc::default(),
        }
    }

    /// Everything one view shows, gathered concurrently.
    async fn snapshot(&self, token: &str) -> Snapshot {
        let (fleet, orders) = tokio::join!(self.fleet(), self.orders(token));
        Snapshot {
            taken: OffsetDateTime::now_utc(),
            fleet,
            orders,
        }
    }

    /// The gateway's status and every instance's metrics.
    async fn fleet(&self) -> Fleet {
        let known: Vec<(String, String)> = self
            .backend
            .services()
            .flat_map(|service| {
                self.backend
                    .instances(service)
                    .into_iter()
                    .map(move |url| (service.to_owned(), base(&url)))
            })
            .collect();
        let status = self
            .backend
            .json::<StatusBody>(self.backend.get("gateway", "/api/v1/status"));
        let mut urls: Vec<String> = known.iter().map(|(_, url)| url.clone()).collect();
        urls.sort();
        urls.dedup();
        let scrapes = join_all(urls.iter().map(|url| self.scrape(url)));
        let (status, scrapes) = tokio::join!(status, scrapes);
        let mut scraped: HashMap<String, Result<Vec<Sample>, String>> =
            urls.into_iter().zip(scrapes).collect();

        // The fleet as the gateway sees it, or else as this storefront was
        // configured (health unknown).
        let (services, status_error) = match status {
            Ok(status) => (
                status
                    .services
                    .into_iter()
                    .map(|s| {
                        let instances = s.instances.into_iter().map(Listed::from).collect();
                        (s.name, instances)
                    })
                    .collect::<Vec<(String, Vec<Listed>)>>(),
                None,
            ),
            Err(failure) => {
                tracing::warn!(error = %failure, "the ops console cannot read the gateway's status");
                let mut services: Vec<(String, Vec<Listed>)> = Vec::new();
                for (service, url) in &known {
                    let listed = Listed::unknown(url.clone());
                    match services.iter_mut().find(|(name, _)| name == service) {
                        Some((_, list)) => list.push(listed),
                        None => services.push((service.clone(), vec![listed])),
                    }
                }
                services.sort_by_key(|(name, _)| (name != "gateway", name.clone()));
                (services, Some(failure.to_string()))
            }
        };

        // Instances the gateway knows and this storefront does not.
        let missing: Vec<String> = services
            .iter()
            .flat_map(|(_, list)| list.iter().map(|i| i.url.clone()))
            .filter(|url| !scraped.contains_key(url))
            .collect();
        let late = join_all(missing.iter().map(|url| self.scrape(url))).await;
        scraped.extend(missing.into_iter().zip(late));

        let now = Instant::now();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let services: Vec<ServiceRow> = services
            .into_iter()
            .map(|(name, list)| ServiceRow {
                instances: list
                    .into_iter()
                    .map(|listed| {
                        let figures = match scraped.get(&listed.url) {
                            Some(Ok(samples)) => {
                                let scrape = Scrape {
                                    at: now,
                                    counts: Counts::from_samples(samples),
                                };
                                let base = history.record(&listed.url, scrape.clone());
                                Ok(stats::figures(&scrape, base.as_ref(), listed.uptime))
                            }
                            Some(Err(e)) => Err(e.clone()),
                            None => Err("not scraped".to_owned()),
                        };
                        InstanceRow { listed, figures }
                    })
                    .collect(),
                name,
            })
            .collect();
        history.keep_only(&scraped.keys().cloned().collect::<HashSet<_>>());
        drop(history);

        let lag = stats::lag_rows(services.iter().flat_map(|s| {
            s.instances.iter().filter_map(|i| {
                scraped
                    .get(&i.listed.url)
                    .and_then(|r| r.as_ref().ok())
                    .map(|samples| (s.name.as_str(), samples.as_slice()))
            })
        }));
        Fleet {
            services,
            status_error,
            lag,
        }
    }

    /// One instance's `/metrics`, read.
    async fn scrape(&self, base: &str) -> Result<Vec<Sample>, String> {
        let response = self
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "not answering".to_owned()
                }
            })?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| "cut short".to_owned())? {
            if body.len() + chunk.len() > SCRAPE_LIMIT {
                return Err("answer too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(metrics::parse(&String::from_utf8_lossy(&body)))
    }

    /// The latest orders of every user, each with its timeline.
    async fn orders(&self, token: &str) -> Result<Vec<Order>, String> {
        let path = format!("/api/v1/orders?all=true&limit={RECENT_ORDERS}");
        let page: OrderPage = self
            .backend
            .json(self.backend.get("orders", path).token(Some(token)))
            .await
            .map_err(|e| e.to_string())?;
        // A list without timelines: each order's own, all at once.
        let details = page.items.iter().map(|order| async move {
            if order.timeline.is_some() {
                return None;
            }
            let call = self
                .backend
                .get("orders", format!("/api/v1/orders/{}", order.id))
                .token(Some(token));
            self.backend.json::<Order>(call).await.ok()
        });
        let details = join_all(details).await;
        Ok(page
            .items
            .into_iter()
            .zip(details)
            .map(|(order, detail)| detail.unwrap_or(order))
            .take(RECENT_ORDERS)
            .collect())
    }
}

/// An instance's base URL without a trailing slash, as the status writes it.
fn base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// The gateway's `/api/v1/status`.
#[derive(Debug, Deserialize)]
struct StatusBody {
    services: Vec<ServiceBody>,
}

#[derive(Debug, Deserialize)]
struct ServiceBody {
    name: String,
    #[serde(default)]
    instances: Vec<InstanceBody>,
}

#[derive(Debug, Deserialize)]
struct InstanceBody {
    url: String,
    healthy: bool,
    instance: Option<String>,
    pid: Option<u32>,
    uptime_seconds: Option<u64>,
    restarts: Option<u64>,
}

/// An instance as listed by the gateway (or, without it, by configuration).
#[derive(Debug, Clone)]
struct Listed {
    url: String,
    /// `None`: the gateway could not say.
    healthy: Option<bool>,
    name: Option<String>,
    pid: Option<u32>,
    uptime: Option<u64>,
    restarts: Option<u64>,
}

impl Listed {
    fn unknown(url: String) -> Self {
        Self {
            url,
            healthy: None,
            name: None,
            pid: None,
            uptime: None,
            restarts: None,
        }
    }
}

impl From<InstanceBody> for Listed {
    fn from(i: InstanceBody) -> Self {
        Self {
            url: i.url.trim_end_matches('/').to_owned(),
            healthy: Some(i.healthy),
            name: i.instance,
            pid: i.pid,
            uptime: i.uptime_seconds,
            restarts: i.restarts,
        }
    }
}

/// A page of orders as orders answers it.
#[derive(Debug, Deserialize)]
struct OrderPage {
    items: Vec<Order>,
}

/// An order: what the console shows of it.
#[derive(Debug, Clone, Deserialize)]
struct Order {
    id: String,
    status: String,
    total: Option<Money>,
    created_at: String,
    /// `None` when the list leaves timelines out.
    timeline: Option<Vec<Step>>,
}

/// One step of an order's saga.
#[derive(Debug, Clone, Deserialize)]
struct Step {
    at: String,
    step: String,
    #[serde(default)]
    detail: String,
}

/// What one view shows.
#[derive(Debug)]
struct Snapshot {
    taken: OffsetDateTime,
    fleet: Fleet,
    orders: Result<Vec<Order>, String>,
}

#[derive(Debug)]
struct Fleet {
    services: Vec<ServiceRow>,
    /// Why the gateway's status is missing, if it is.
    status_error: Option<String>,
    lag: Vec<LagRow>,
}

#[derive(Debug)]
struct ServiceRow {
    name: String,
    instances: Vec<InstanceRow>,
}

#[derive(Debug)]
struct InstanceRow {
    listed: Listed,
    /// The figures, or why the metrics could not be read.
    figures: Result<Figures, String>,
}

/// The console's routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/ops", get(page))
        .route("/ops/fleet", get(fragment))
}

/// The signed-in admin, or a redirect to sign in, or 403.
#[allow(clippy::result_large_err)] // the crate's page error, as `Session::require` answers it
fn admin(session: &Session) -> Result<&User, PageError> {
    let user = session.require("/ops")?;
    if !user.is_admin() {
        return Err(PageError::Forbidden(
            "The ops console is for administrators.".to_owned(),
        ));
    }
    Ok(user)
}

/// `GET /ops`: the whole console.
async fn page(State(app): State<App>, session: Session) -> Result<Markup, PageError> {
    let user = admin(&session)?;
    let snapshot = app.console.snapshot(&user.token).await;
    Ok(layout::page(
        &session,
        &Chrome::default(),
        "Ops console",
        view::console(&snapshot),
    ))
}

/// `GET /ops/fleet`: the live part alone, for the script to swap in.
async fn fragment(State(app): State<App>, session: Session) -> Result<Markup, PageError> {
    let user = admin(&session)?;
    let snapshot = app.console.snapshot(&user.token).await;
    Ok(view::live(&snapshot))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Json;
    use axum::extract::Path;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use bazaar_platform::Config;
    use serde_json::json;

    use super::*;
    use crate::Storefront;
    use crate::session::ACCESS_COOKIE;

    /// A stand-in for the gateway's status, an instance's metrics and
    /// orders' list (without timelines) and detail, on one port.
    async fn fake_fleet() -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let me = base.clone();
        let app = Router::new()
            .route(
                "/api/v1/status",
                get(move || {
                    let me = me.clone();
                    async move {
                        Json(json!({"services": [
                            {"name": "gateway", "instances": [{"url": me, "healthy": true, "instance": "gateway-0", "pid": 7, "uptime_seconds": 100, "restarts": 2}]},
                            {"name": "catalog", "instances": [{"url": "http://127.0.0.1:9", "healthy": false}]},
                        ]}))
                    }
                }),
            )
            .route(
                "/metrics",
                get(|| async {
                    "http_requests_total{route=\"/a\",status=\"2xx\"} 99\nhttp_requests_total{route=\"/a\",status=\"5xx\"} 1\nhttp_request_duration_seconds_bucket{route=\"/a\",le=\"0.1\"} 100\nhttp_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 100\nevents_consumer_lag{group=\"inventory\"} 4\n# EOF\n"
                }),
            )
            .route(
                "/api/v1/orders",
                get(|headers: HeaderMap| async move {
                    if !headers.contains_key("authorization") {
                        return http::StatusCode::UNAUTHORIZED.into_response();
                    }
                    Json(json!({"items": [{"id": "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "confirmed", "total": {"amount": 1250, "currency": "EUR"}, "created_at": "2025-06-15T15:05:00Z"}], "page": 1, "limit": 10, "total": 1})).into_response()
                }),
            )
            .route(
                "/api/v1/orders/{id}",
                get(|Path(id): Path<String>| async move {
                    Json(json!({"id": id, "status": "confirmed", "total": {"amount": 1250, "currency": "EUR"}, "created_at": "2025-06-15T15:05:00Z",
                        "timeline": [{"at": "2025-06-15T15:05:00Z", "step": "accepted", "detail": "Accepted."}, {"at": "2025-06-15T15:05:00.400Z", "step": "confirmed", "detail": "Confirmed."}]}))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn the_console_is_for_admins_and_shows_the_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let identity = bazaar_testkit::identity_with_admin(dir.path()).await;
        let fake = fake_fleet().await;
        let mut config = Config::for_test("storefront", dir.path().join("storefront"));
        bazaar_testkit::upstream(&mut config, "identity", &identity);
        for service in ["gateway", "orders"] {
            config
                .upstreams
                .insert(service.to_owned(), vec![Url::parse(&fake).unwrap()]);
        }
        let storefront = bazaar_testkit::start::<Storefront>(config).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let get = |path: &str, token: Option<&str>| {
            let mut request = http.get(storefront.url(path));
            if let Some(token) = token {
                request = request.header("cookie", format!("{ACCESS_COOKIE}={token}"));
            }
            request.send()
        };

        for path in ["/ops", "/ops/fleet"] {
            let res = get(path, None).await.unwrap();
            assert!(res.status().is_redirection(), "{path}: {}", res.status());
            assert_eq!(res.headers()["location"], "/login?next=%2Fops");
        }
        let customer = bazaar_testkit::user(&http, &identity, "customer").await;
        let res = get("/ops", Some(&customer.token)).await.unwrap();
        assert_eq!(res.status(), 403);

        let admin = bazaar_testkit::admin(&http, &identity).await;
        let res = get("/ops", Some(&admin.token)).await.unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains("<html"), "a whole page");
        assert!(
            html.contains(r#"<tr data-service="gateway" data-healthy="healthy">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-service="catalog" data-healthy="unhealthy""#),
            "{html}"
        );
        assert!(
            html.contains("Metrics unavailable: not answering."),
            "{html}"
        );
        assert!(html.contains("1.0 %"), "5xx share since start: {html}");
        assert!(html.contains("since start"), "{html}");
        assert!(
            html.contains(r#"<td class="num">2</td>"#),
            "restarts: {html}"
        );
        assert!(html.contains(r#"data-group="inventory""#), "{html}");
        assert!(
            html.contains("accepted → confirmed"),
            "timelines fetched: {html}"
        );
        assert!(html.contains("12.50 EUR"), "{html}");

        // The fragment: the live part alone, now with a rate between scrapes.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let res = get("/ops/fleet", Some(&admin.token)).await.unwrap();
        assert_eq!(res.status(), 200);
        let fragment = res.text().await.unwrap();
        assert!(fragment.starts_with("<div "), "{fragment}");
        assert!(fragment.contains(r#"id="ops-live""#), "{fragment}");
        assert!(!fragment.contains("<html"), "{fragment}");
        assert!(fragment.contains("data-refreshed="), "{fragment}");
        assert!(fragment.contains("(about 1 s)"), "{fragment}");
        storefront.stop().await;
        identity.stop().await;
    }
}
