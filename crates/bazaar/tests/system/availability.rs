//! Availability under faults: a frozen, dying or restarting service costs
//! only the callers that truly need it.
//!
//! - Each service in turn is frozen (SIGSTOP: it keeps its sockets and
//!   never answers) while every public endpoint is probed: those that do
//!   not need it answer 200, those that do answer a 5xx within their
//!   deadline; two seconds after SIGCONT every probe answers 200 again.
//! - With two replicas each of catalog and inventory under read load, a
//!   replica is SIGKILLed every two seconds: no read fails.
//! - Payments is frozen, then killed again and again while an order waits
//!   for its Authorize: the order still confirms.
//!
//! The time each probe took is printed with the matrix, not asserted:
//! `bazaar bench` is where latencies are measured.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use serde_json::Value;

use crate::api::{Api, CARD_OK, User, order_body};
use crate::harness::Fleet;

/// One public endpoint and the services it cannot answer without.
struct Probe {
    path: String,
    /// A storefront page (sent with the session cookie), else an API call.
    page: bool,
    needs: &'static [&'static str],
}

/// What one probe got.
#[derive(Debug)]
struct Answer {
    status: u16,
    problem: bool,
    took: Duration,
}

impl Probe {
    fn api(path: impl Into<String>, needs: &'static [&'static str]) -> Self {
        Self {
            path: path.into(),
            page: false,
            needs,
        }
    }

    fn page(path: impl Into<String>, needs: &'static [&'static str]) -> Self {
        Self {
            path: path.into(),
            page: true,
            needs,
        }
    }

    async fn ask(&self, client: &reqwest::Client, base: &str, user: &User) -> Answer {
        let started = Instant::now();
        let mut request = client.get(format!("{base}{}", self.path));
        request = if self.page {
            request
                .header(COOKIE, format!("bazaar_access={}", user.token))
                .header(ACCEPT, "text/html")
        } else {
            request.bearer_auth(&user.token)
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let problem = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                // Read the body, so a page that stalls half-way counts.
                let _ = response.bytes().await;
                Answer {
                    status,
                    problem,
                    took: started.elapsed(),
                }
            }
            Err(_) => Answer {
                status: 0,
                problem: false,
                took: started.elapsed(),
            },
        }
    }
}

async fn ask_all(fleet: &Fleet, probes: &[Probe], user: &User) -> Vec<Answer> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    futures_util::future::join_all(
        probes
            .iter()
            .map(|probe| probe.ask(&client, fleet.base_url(), user)),
    )
    .await
}

fn table(probes: &[Probe], answers: &[Answer]) -> String {
    probes
        .iter()
        .zip(answers)
        .map(|(p, a)| format!("  {:>3} {:>6} ms  {}", a.status, a.took.as_millis(), p.path))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn freezing_any_one_service_costs_only_the_callers_that_need_it() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let buyer = api.user("customer").await;
    let product = api.product(&seller, "Walnut bowl", 3200, 10).await;
    // A line in the cart, so the cart page needs the catalog too.
    api.put_in_cart(&buyer, &product, 1).await;

    let probes = [
        Probe::api("/healthz", &[]),
        Probe::api("/api/v1/status", &[]),
        Probe::api("/api/v1/users/me", &["identity"]),
        Probe::api("/api/v1/categories", &["catalog"]),
        Probe::api("/api/v1/products?limit=5", &["catalog"]),
        Probe::api(format!("/api/v1/products/{product}"), &["catalog"]),
        Probe::api(format!("/api/v1/inventory/{product}"), &["inventory"]),
        Probe::api("/api/v1/cart", &["cart"]),
        Probe::api("/api/v1/orders", &["orders"]),
        Probe::api(
            "/api/v1/payments?order_id=00000000-0000-4000-8000-000000000000",
            &["payments"],
        ),
        Probe::api("/api/v1/notifications?limit=1", &["notifications"]),
        // Pages name what they cannot do without; the bell's count and the
        // stock badge are optional parts.
        Probe::page("/", &["storefront", "catalog"]),
        Probe::page(format!("/products/{product}"), &["storefront", "catalog"]),
        Probe::page("/cart", &["storefront", "cart", "catalog"]),
        Probe::page("/orders", &["storefront", "orders"]),
        Probe::page("/notifications", &["storefront", "notifications"]),
    ];
    let healthy = ask_all(&fleet, &probes, &buyer).await;
    assert!(
        healthy.iter().all(|a| a.status == 200),
        "with nothing frozen every probe answers 200:\n{}",
        table(&probes, &healthy)
    );

    let status = fleet.status().await.expect("status");
    let victims: Vec<String> = status
        .services
        .iter()
        .map(|s| s.name.clone())
        .filter(|name| name != "gateway")
        .collect();
    assert!(victims.len() >= 8, "{victims:?}");
    let mut wrong = Vec::new();
    for victim in &victims {
        let pid = fleet
            .signal_instance(&format!("{victim}-0"), Signal::SIGSTOP)
            .await
            .unwrap_or_else(|| panic!("no {victim}-0 to freeze"));
        let frozen = ask_all(&fleet, &probes, &buyer).await;
        kill(Pid::from_raw(pid as i32), Signal::SIGCONT).expect("thaw");
        eprintln!("{victim} frozen:\n{}", table(&probes, &frozen));
        for (probe, answer) in probes.iter().zip(&frozen) {
            let needed = probe.needs.contains(&victim.as_str());
            let fine = if needed {
                // A prompt problem: refused by an open breaker or cut at
                // the deadline; pages fail as pages.
                matches!(answer.status, 502..=504) && (probe.page || answer.problem)
            } else {
                answer.status == 200
            };
            if !fine {
                wrong.push(format!(
                    "{victim} frozen: {} answered {} (needs {:?})",
                    probe.path, answer.status, probe.needs
                ));
            }
        }

        // Two seconds after it wakes, nothing remembers the freeze.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let thawed = ask_all(&fleet, &probes, &buyer).await;
        for (probe, answer) in probes.iter().zip(&thawed) {
            if answer.status != 200 {
                wrong.push(format!(
                    "2 s after {victim} woke: {} answered {}",
                    probe.path, answer.status
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nfleet output:\n{}",
        wrong.join("\n"),
        fleet.output()
    );
}

#[tokio::test]
async fn killing_replicas_under_read_load_fails_no_read_and_a_payments_outage_cancels_no_order() {
    let fleet = Fleet::start_with(&[
        "--no-seed",
        "--replicas",
        "catalog=2",
        "--replicas",
        "inventory=2",
    ])
    .await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let mut ids = Vec::new();
    for title in ["Clay cup", "Wool scarf", "Birch spoon"] {
        ids.push(api.product(&seller, title, 1500, 20).await);
    }
    let paths: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            [
                format!("/api/v1/products/{id}"),
                format!("/api/v1/inventory/{id}"),
            ]
        })
        .chain(["/api/v1/products?limit=5".to_owned()])
        .collect();
    // One reader per account: the gateway's rate limit is per user.
    let mut readers = Vec::new();
    for _ in 0..6 {
        readers.push(api.user("customer").await);
    }

    let reading = AtomicBool::new(true);
    let reads = AtomicUsize::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let load = futures_util::future::join_all(readers.iter().enumerate().map(|(n, reader)| {
        let (reading, reads, failures, paths, api) = (&reading, &reads, &failures, &paths, &api);
        async move {
            let mut i = n;
            while reading.load(Ordering::Relaxed) {
                let path = &paths[i % paths.len()];
                i += 1;
                match api
                    .try_send(Method::GET, path, Some(reader), &[], None)
                    .await
                {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {}
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{path}: {status} {body}"));
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{path}: {e}")),
                }
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }));
    let killer = async {
        let victims = [
            "catalog-0",
            "inventory-0",
            "catalog-1",
            "inventory-1",
            "catalog-0",
            "inventory-1",
        ];
        let mut killed = Vec::new();
        for victim in victims {
            // One replica at a time: the other one of its service is ready.
            let service = victim.split('-').next().expect("service");
            fleet
                .wait_for_status(
                    &format!("every {service} ready before killing {victim}"),
                    |s| {
                        s.service(service)
                            .is_some_and(|s| s.instances.iter().all(|i| i.healthy))
                    },
                )
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            killed.push(fleet.signal_instance(victim, Signal::SIGKILL).await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        reading.store(false, Ordering::Relaxed);
        killed
    };
    let (_, killed) = tokio::join!(load, killer);
    assert!(killed.iter().all(Option::is_some), "{killed:?}");
    let failures = failures.into_inner().unwrap();
    let reads = reads.load(Ordering::Relaxed);
    eprintln!(
        "{reads} reads while 6 replicas were killed, {} failed",
        failures.len()
    );
    assert!(reads > 500, "the load ran: {reads} reads");
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed, first: {:#?}\nfleet output:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        fleet.output()
    );

    // Payments is frozen while an order waits on it, then killed again
    // and again as the launcher restarts it: no answer is no verdict, so
    // the order waits it out and confirms.
    let buyer = api.user("customer").await;
    let product = api.product(&seller, "Enamel jug", 2400, 5).await;
    let frozen = fleet
        .signal_instance("payments-0", Signal::SIGSTOP)
        .await
        .expect("payments to freeze");
    let order = api
        .place(&buyer, &order_body(Some(&[(&product, 1)]), CARD_OK))
        .await;
    let id = order["id"].as_str().expect("id").to_owned();
    api.until("the order waits on Authorize", || async {
        let order = api.get(&format!("/api/v1/orders/{id}"), Some(&buyer)).await;
        steps(&order).iter().any(|s| s == "reserved").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill(Pid::from_raw(frozen as i32), Signal::SIGKILL).expect("kill the frozen payments");
    let outage = Instant::now();
    let mut kills = 1;
    while outage.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if fleet
            .signal_instance("payments-0", Signal::SIGKILL)
            .await
            .is_some()
        {
            kills += 1;
        }
    }
    let done = api.settled(&buyer, &id).await;
    assert_eq!(
        done["status"],
        "confirmed",
        "payments killed {kills} times: {done}\nfleet output:\n{}",
        fleet.output()
    );
    // Read once payments answers again (the launcher backs off its restarts).
    let payments = api
        .until("payments answers after the outage", || async {
            let path = format!("/api/v1/payments?order_id={id}");
            let response = api
                .try_send(Method::GET, &path, Some(&buyer), &[], None)
                .await
                .ok()?;
            if response.status() != reqwest::StatusCode::OK {
                return None;
            }
            response.json::<Vec<Value>>().await.ok()
        })
        .await;
    assert_eq!(payments.len(), 1, "charged once: {payments:?}");
    assert_eq!(payments[0]["status"], "captured");
}

fn steps(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|e| e["step"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
