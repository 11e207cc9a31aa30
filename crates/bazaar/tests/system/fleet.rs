//! The running fleet: every service present and healthy, crashed instances
//! restarted, replicas sharing the public port.

use std::time::Duration;

use bazaar::registry::{self, SERVICES};
use bazaar_testkit::Metrics;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{EVENTUALLY, Fleet, Status, eventually};

/// Every registered service with `count(service)` instances, all healthy.
fn all_healthy(status: &Status, count: impl Fn(&str) -> usize) -> bool {
    SERVICES.iter().all(|def| {
        status.service(def.name).is_some_and(|s| {
            s.instances.len() == count(def.name) && s.instances.iter().all(|i| i.healthy)
        })
    })
}

#[tokio::test]
async fn the_fleet_starts_with_every_service_healthy() {
    let fleet = Fleet::start().await;
    let status = fleet
        .wait_for_status("every service listed with one healthy instance", |s| {
            all_healthy(s, |_| 1)
        })
        .await;
    assert_eq!(
        status.services.len(),
        SERVICES.len(),
        "status lists services the binary does not know: {status:#?}"
    );
    // Instances are reached on their own ports, never the public one.
    for (service, instance) in status.instances() {
        assert_ne!(
            instance.url.trim_end_matches('/'),
            fleet.base_url(),
            "{service}: {instance:?}"
        );
        assert!(
            instance.pid.is_some(),
            "{service} reports no pid: {instance:?}"
        );
    }
    // One process per instance, each a child of the launcher.
    let children: Vec<u32> = fleet.children().iter().map(|c| c.pid).collect();
    assert_eq!(
        children.len(),
        SERVICES.len(),
        "children {children:?}\n{}",
        fleet.output()
    );
    for (service, instance) in status.instances() {
        let pid = instance.pid.unwrap_or_default();
        assert!(
            children.contains(&pid),
            "{service} pid {pid} is not a child of the launcher {children:?}"
        );
    }
    let health = fleet
        .client()
        .get(format!("{}/healthz", fleet.base_url()))
        .send()
        .await
        .expect("GET /healthz on the public port");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_instance_killed_with_sigkill_comes_back_on_the_same_url() {
    let fleet = Fleet::start().await;
    let before = fleet
        .wait_for_status("all healthy", |s| all_healthy(s, |_| 1))
        .await;
    // Prefer a service behind the gateway; with the gateway alone, kill it.
    let (service, victim) = before
        .instances()
        .filter(|(name, _)| *name != registry::FRONT_DOOR)
        .last()
        .or_else(|| before.instances().last())
        .map(|(s, i)| (s.to_owned(), i.clone()))
        .expect("an instance");
    let name = victim.instance.clone().expect("instance name in status");
    let old_pid = victim.pid.expect("pid in status");
    assert_eq!(victim.restarts, Some(0), "{name} before the kill");
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).expect("SIGKILL the instance");

    let after = fleet
        .wait_for_status(&format!("{name} healthy again with a new pid"), |s| {
            s.instance(&name)
                .is_some_and(|i| i.healthy && i.pid.is_some_and(|p| p != old_pid))
        })
        .await;
    let again = after.instance(&name).expect("victim in status");
    assert_eq!(again.url, victim.url, "{service} came back elsewhere");
    assert_eq!(again.restarts, Some(1), "the status counts the restart");
    let new_pid = again.pid.expect("pid");
    assert!(
        fleet.children().iter().any(|c| c.pid == new_pid),
        "the new {name} (pid {new_pid}) is not the launcher's child"
    );
    let output = fleet.output();
    assert!(
        output.contains(&format!("{name} (pid {old_pid}) exited unexpectedly")),
        "the restart was not logged:\n{output}"
    );
}

/// Sum of `http_requests_total` samples for `route` in a Prometheus text.
fn requests_for_route(metrics: &str, route: &str) -> f64 {
    Metrics::parse(metrics).sum("http_requests_total", &[("route", route)])
}

#[tokio::test]
async fn gateway_replicas_share_the_public_port() {
    let fleet = Fleet::start_with(&["--replicas", "gateway=2"]).await;
    let replicas = |name: &str| if name == registry::FRONT_DOOR { 2 } else { 1 };
    let status = fleet
        .wait_for_status("two healthy gateways and every service", |s| {
            all_healthy(s, replicas)
        })
        .await;
    let gateways: Vec<String> = status
        .service(registry::FRONT_DOOR)
        .expect("gateway listed")
        .instances
        .iter()
        .map(|i| i.url.trim_end_matches('/').to_owned())
        .collect();

    // A fresh connection per request, so the kernel picks a replica each time.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for i in 0..100 {
        let response = fresh
            .get(format!("{}/healthz", fleet.base_url()))
            .header("connection", "close")
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} to the public port: {e}"));
        assert_eq!(response.status(), 200, "request {i}");
    }

    for url in &gateways {
        let served = eventually(EVENTUALLY, || async {
            let text = fleet
                .client()
                .get(format!("{url}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let n = requests_for_route(&text, "/healthz");
            (n > 0.0).then_some(n)
        })
        .await;
        assert!(
            served.is_some(),
            "the gateway at {url} served none of 100 connections to the public port; {gateways:?}"
        );
    }
}

#[test]
fn request_counts_are_read_per_route() {
    let text = "# TYPE http_requests_total counter\n\
        http_requests_total{service=\"gateway\",instance=\"gateway-0\",method=\"GET\",route=\"/healthz\",status=\"2xx\"} 41\n\
        http_requests_total{service=\"gateway\",instance=\"gateway-0\",method=\"GET\",route=\"/readyz\",status=\"2xx\"} 7\n\
        http_requests_total{service=\"gateway\",instance=\"gateway-0\",method=\"HEAD\",route=\"/healthz\",status=\"4xx\"} 1\n";
    assert_eq!(requests_for_route(text, "/healthz"), 42.0);
    assert_eq!(requests_for_route(text, "/metrics"), 0.0);
}
