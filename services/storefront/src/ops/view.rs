//! The console's markup: three tables (fleet, consumer lag, recent orders),
//! each with a caption and header scopes, inside a horizontally scrolling
//! region so a phone can read them.

use std::time::Duration;

use maud::{Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::stats::{Figures, LagRow, Quantile};
use super::{Fleet, InstanceRow, Order, Snapshot, Step};
use crate::assets;
use crate::layout;

/// The whole console (inside the page's layout).
pub(super) fn console(snapshot: &Snapshot) -> Markup {
    html! {
        h1 { "Ops console" }
        p.ops-intro {
            "The fleet as the gateway sees it, each instance's own metrics, "
            "the broker's consumer lag and the latest orders' checkout sagas. "
            "Reload the page for fresh figures; with JavaScript it refreshes itself."
        }
        (live(snapshot))
        script src=(assets::OPS_JS.url()) defer {}
    }
}

/// The part that refreshes: also the answer of `/ops/fleet`.
pub(super) fn live(snapshot: &Snapshot) -> Markup {
    let taken = snapshot.taken;
    let millis = taken.unix_timestamp_nanos() / 1_000_000;
    html! {
        div #ops-live .ops data-refreshed=(millis) data-src="/ops/fleet" {
            p.ops-updated {
                "Updated "
                time datetime=(taken.format(&Rfc3339).unwrap_or_default()) {
                    (clock(taken)) " UTC"
                }
                "."
            }
            (fleet(&snapshot.fleet))
            (lag(&snapshot.fleet.lag))
            (orders(&snapshot.orders, taken))
        }
    }
}

fn fleet(fleet: &Fleet) -> Markup {
    let instances: Vec<&InstanceRow> = fleet
        .services
        .iter()
        .flat_map(|s| s.instances.iter())
        .collect();
    let healthy = instances
        .iter()
        .filter(|i| i.listed.healthy == Some(true))
        .count();
    let window = instances
        .iter()
        .filter_map(|i| i.figures.as_ref().ok().and_then(|f| f.window))
        .fold(None, |max: Option<f64>, w| {
            Some(max.map_or(w, |m| m.max(w)))
        });
    html! {
        section.ops-section aria-labelledby="ops-fleet-title" {
            h2 #ops-fleet-title { "Fleet" }
            @if let Some(error) = &fleet.status_error {
                p.notice.error role="status" {
                    "The gateway's status is unavailable (" (error) "): instances are listed as "
                    "this storefront was configured, and their health is unknown."
                }
            } @else {
                p.ops-summary #ops-fleet-summary {
                    (fleet.services.len()) " services, "
                    (healthy) " of " (instances.len()) " instances healthy."
                }
            }
            div.ops-scroll role="region" aria-labelledby="ops-fleet-caption" tabindex="0" {
                table.ops-table #ops-fleet-table {
                    caption #ops-fleet-caption { "Services and their instances" }
                    thead {
                        tr {
                            th scope="col" { "Service" }
                            th scope="col" { "Instance" }
                            th scope="col" { "State" }
                            th scope="col" { "Uptime" }
                            th scope="col" { "Restarts" }
                            th scope="col" .num { "Requests/s" }
                            th scope="col" .num { "5xx" }
                            th scope="col" .num { "p99 latency" }
                        }
                    }
                    tbody {
                        @for service in &fleet.services {
                            @if service.instances.is_empty() {
                                tr data-service=(service.name) data-healthy="none" {
                                    th scope="row" { (service.name) }
                                    td colspan="7" .ops-muted { "No instances." }
                                }
                            }
                            @for instance in &service.instances {
                                (instance_row(&service.name, instance))
                            }
                        }
                    }
                }
            }
            p.ops-note {
                "Requests/s, 5xx (share of answers with a 5xx status) and p99 (from the latency histogram) cover the time since the previous reading"
                @if let Some(window) = window { " (about " (format!("{window:.0}")) " s)" }
                ", or, marked “since start”, the whole life of the process when there is no earlier reading. "
                "Health checks and metric scrapes are not counted."
            }
        }
    }
}

fn instance_row(service: &str, instance: &InstanceRow) -> Markup {
    let listed = &instance.listed;
    let (state, class) = match listed.healthy {
        Some(true) => ("healthy", "ok"),
        Some(false) => ("unhealthy", "bad"),
        None => ("unknown", "unknown"),
    };
    html! {
        tr data-service=(service) data-healthy=(state) {
            th scope="row" { (service) }
            td {
                (listed.name.as_deref().unwrap_or("—"))
                @if let Some(pid) = listed.pid { span.ops-muted { " · pid " (pid) } }
                br;
                span.ops-url { (listed.url) }
            }
            td { span class={ "ops-badge " (class) } { (state) } }
            td { (listed.uptime.map_or_else(|| "—".to_owned(), uptime)) }
            td.num { (listed.restarts.map_or_else(|| "—".to_owned(), |r| r.to_string())) }
            @match &instance.figures {
                Ok(figures) => (figure_cells(figures)),
                Err(why) => td colspan="3" .ops-muted { "Metrics unavailable: " (why) "." },
            }
        }
    }
}

fn figure_cells(figures: &Figures) -> Markup {
    let since_start = figures.window.is_none();
    html! {
        td.num {
            (figures.rate.map_or_else(|| "—".to_owned(), rate))
            @if since_start && figures.rate.is_some() { br; span.ops-hint { "since start" } }
        }
        td.num {
            (figures.errors.map_or_else(|| "—".to_owned(), share))
        }
        td.num {
            (figures.p99.map_or_else(|| "—".to_owned(), latency))
        }
    }
}

fn lag(rows: &[LagRow]) -> Markup {
    let topics = rows.iter().any(|r| r.topic.is_some());
    html! {
        section.ops-section aria-labelledby="ops-lag-title" {
            h2 #ops-lag-title { "Consumer lag" }
            @if rows.is_empty() {
                p.ops-muted { "No consumer group reported its lag." }
            } @else {
                div.ops-scroll role="region" aria-labelledby="ops-lag-caption" tabindex="0" {
                    table.ops-table #ops-lag-table {
                        caption #ops-lag-caption { "Events each consumer group has not yet acknowledged" }
                        thead {
                            tr {
                                th scope="col" { "Group" }
                                th scope="col" { "Service" }
                                @if topics { th scope="col" { "Topic" } }
                                th scope="col" .num { "Lag" }
                                th scope="col" .num { "Dead-lettered" }
                                th scope="col" .num { "Redelivered" }
                                th scope="col" .num { "Instances" }
                            }
                        }
                        tbody {
                            @for row in rows {
                                tr data-group=(row.group) {
                                    th scope="row" { (row.group) }
                                    td { (row.service) }
                                    @if topics { td { (row.topic.as_deref().unwrap_or("—")) } }
                                    td.num.ops-lagging[row.lag.is_some_and(|l| l > 0.0)] {
                                        (row.lag.map_or_else(|| "—".to_owned(), count))
                                    }
                                    td.num.ops-bad[row.dead_lettered > 0.0] { (count(row.dead_lettered)) }
                                    td.num { (count(row.redelivered)) }
                                    td.num { (row.instances) }
                                }
                            }
                        }
                    }
                }
                p.ops-note {
                    "Lag is the largest any instance of the service reports (each reads the group's backlog from the broker, every few seconds); "
                    "dead-lettered and redelivered events are counted since each instance started."
                }
            }
        }
    }
}

fn orders(orders: &Result<Vec<Order>, String>, now: OffsetDateTime) -> Markup {
    html! {
        section.ops-section aria-labelledby="ops-orders-title" {
            h2 #ops-orders-title { "Recent orders" }
            @match orders {
                Err(why) => p.notice.error role="status" { "The orders are unavailable: " (why) },
                Ok(list) if list.is_empty() => p.ops-muted { "No orders yet." },
                Ok(list) => div.ops-scroll role="region" aria-labelledby="ops-orders-caption" tabindex="0" {
                    table.ops-table #ops-orders-table {
                        caption #ops-orders-caption { "The latest orders of every customer, newest first, with their checkout saga" }
                        thead {
                            tr {
                                th scope="col" { "Order" }
                                th scope="col" { "Status" }
                                th scope="col" .num { "Total" }
                                th scope="col" { "Age" }
                                th scope="col" { "Saga" }
                            }
                        }
                        tbody {
                            @for order in list { (order_row(order, now)) }
                        }
                    }
                }
            }
        }
    }
}

fn order_row(order: &Order, now: OffsetDateTime) -> Markup {
    // The end of the id: a UUIDv7 starts with its time, the same for
    // orders placed together.
    let tail = order
        .id
        .char_indices()
        .rev()
        .nth(7)
        .map_or(order.id.as_str(), |(i, _)| &order.id[i..]);
    let created = parse_time(&order.created_at);
    let steps = order.timeline.as_deref().unwrap_or_default();
    let start = steps.first().and_then(|s| parse_time(&s.at));
    let took = start
        .zip(steps.last().and_then(|s| parse_time(&s.at)))
        .map(|(first, last)| last - first);
    html! {
        tr data-order=(order.id) {
            th scope="row" { code { "…" (tail) } span.visually-hidden { " (order " (order.id) ")" } }
            td { span class={ "status-" (order.status) } { (order.status) } }
            td.num {
                @match &order.total {
                    Some(total) => (layout::money(total.amount, &total.currency)),
                    None => "—",
                }
            }
            td {
                @match created {
                    Some(created) => time datetime=(order.created_at) { (age(now - created)) " ago" },
                    None => "—",
                }
            }
            td {
                @if steps.is_empty() {
                    span.ops-muted { "No steps yet." }
                } @else {
                    details.ops-saga data-key=(order.id) {
                        summary {
                            span.ops-steps { (steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>().join(" → ")) }
                            @if let Some(took) = took { " " span.ops-muted { "(" (span(took)) ")" } }
                        }
                        ol.ops-timeline {
                            @for step in steps { (step_item(step, start)) }
                        }
                    }
                }
            }
        }
    }
}

fn step_item(step: &Step, start: Option<OffsetDateTime>) -> Markup {
    let offset = start
        .zip(parse_time(&step.at))
        .map(|(start, at)| at - start);
    html! {
        li {
            @if let Some(offset) = offset {
                time.ops-muted datetime=(step.at) { "+" (span(offset)) }
                " "
            }
            strong { (step.step) }
            @if !step.detail.is_empty() { " — " (step.detail) }
        }
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `HH:MM:SS`.
fn clock(at: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// An uptime in its two largest units: `3d 4h`, `2h 05m`, `4m 10s`, `12s`.
fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// How long ago, roughly: `12s`, `5m`, `3h`, `2d`.
fn age(ago: time::Duration) -> String {
    let seconds = ago.whole_seconds().max(0).unsigned_abs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// A short span between saga steps: `850 ms`, `1.2 s`.
fn span(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        #[allow(clippy::cast_precision_loss)] // shown to one decimal
        let s = ms as f64 / 1000.0;
        format!("{s:.1} s")
    }
}

/// Requests per second.
fn rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}")
    } else if r < 100.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// A share as a percentage.
fn share(s: f64) -> String {
    let pct = s * 100.0;
    if pct == 0.0 {
        "0 %".to_owned()
    } else if pct < 0.1 {
        "< 0.1 %".to_owned()
    } else {
        format!("{pct:.1} %")
    }
}

/// A latency in seconds.
fn latency(q: Quantile) -> String {
    let text = |s: f64| {
        let d = Duration::from_secs_f64(s.max(0.0));
        if s < 0.001 {
            format!("{:.2} ms", s * 1000.0)
        } else if s < 0.1 {
            format!("{:.1} ms", s * 1000.0)
        } else if s < 1.0 {
            format!("{} ms", d.as_millis())
        } else {
            format!("{s:.2} s")
        }
    };
    match q {
        Quantile::At(s) => text(s),
        Quantile::Above(s) => format!("> {}", text(s)),
    }
}

/// A count (counters are floats in the exposition).
fn count(v: f64) -> String {
    format!("{v:.0}")
}

#[cfg(test)]
mod tests {
    use super::super::stats::LagRow;
    use super::super::{Listed, ServiceRow};
    use super::*;

    fn snapshot() -> Snapshot {
        let listed = |url: &str, healthy| Listed {
            url: url.to_owned(),
            healthy,
            name: Some("catalog-0".to_owned()),
            pid: Some(42),
            uptime: Some(3725),
            restarts: None,
        };
        Snapshot {
            taken: OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
            fleet: Fleet {
                services: vec![
                    ServiceRow {
                        name: "catalog".to_owned(),
                        instances: vec![
                            InstanceRow {
                                listed: listed("http://127.0.0.1:1", Some(true)),
                                figures: Ok(Figures {
                                    rate: Some(12.345),
                                    errors: Some(0.02),
                                    p99: Some(Quantile::At(0.0123)),
                                    window: Some(2.5),
                                }),
                            },
                            InstanceRow {
                                listed: listed("http://127.0.0.1:2", Some(false)),
                                figures: Err("timed out".to_owned()),
                            },
                        ],
                    },
                    ServiceRow {
                        name: "<script>".to_owned(),
                        instances: vec![],
                    },
                ],
                status_error: None,
                lag: vec![LagRow {
                    service: "inventory".to_owned(),
                    group: "inventory".to_owned(),
                    topic: None,
                    lag: Some(3.0),
                    dead_lettered: 1.0,
                    redelivered: 0.0,
                    instances: 1,
                }],
            },
            orders: Ok(vec![Order {
                id: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned(),
                status: "confirmed".to_owned(),
                total: Some(super::super::Money {
                    amount: 1250,
                    currency: "EUR".to_owned(),
                }),
                created_at: "2025-06-15T15:05:00Z".to_owned(),
                timeline: Some(vec![
                    Step {
                        at: "2025-06-15T15:05:00Z".to_owned(),
                        step: "accepted".to_owned(),
                        detail: "Order accepted.".to_owned(),
                    },
                    Step {
                        at: "2025-06-15T15:05:01.200Z".to_owned(),
                        step: "confirmed".to_owned(),
                        detail: String::new(),
                    },
                ]),
            }]),
        }
    }

    #[test]
    fn tables_are_captioned_scoped_and_escaped() {
        let html = live(&snapshot()).into_string();
        assert_eq!(html.matches("<caption").count(), 3, "{html}");
        assert!(html.contains(r#"<th scope="col">Service</th>"#), "{html}");
        assert!(html.contains(r#"<th scope="row">catalog</th>"#), "{html}");
        assert!(html.contains(r#"data-refreshed="1750000000000""#), "{html}");
        assert!(html.contains("1 of 2 instances healthy"), "{html}");
        assert!(html.contains(r#"data-healthy="healthy""#), "{html}");
        assert!(html.contains(r#"data-healthy="unhealthy""#), "{html}");
        assert!(
            html.contains("12.3</td>") || html.contains(">12.3<"),
            "{html}"
        );
        assert!(html.contains("2.0 %"), "{html}");
        assert!(html.contains("12.3 ms"), "{html}");
        assert!(html.contains("Metrics unavailable: timed out."), "{html}");
        assert!(html.contains("1h 02m"), "{html}");
        assert!(html.contains("accepted → confirmed"), "{html}");
        assert!(html.contains("+1.2 s"), "{html}");
        assert!(html.contains("12.50 EUR"), "{html}");
        assert!(html.contains("<code>…2e3f4a5b</code>"), "{html}");
        assert!(!html.contains("<script>"), "names are escaped: {html}");
    }

    #[test]
    fn the_page_loads_its_script_from_a_file() {
        let html = console(&snapshot()).into_string();
        assert!(html.contains(r#"<script src="/assets/ops.js?v="#), "{html}");
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(uptime(12), "12s");
        assert_eq!(uptime(250), "4m 10s");
        assert_eq!(uptime(7500), "2h 05m");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(age(time::Duration::seconds(-3)), "0s");
        assert_eq!(age(time::Duration::seconds(150)), "2m");
        assert_eq!(rate(0.4), "0.40");
        assert_eq!(rate(1234.0), "1234");
        assert_eq!(share(0.0), "0 %");
        assert_eq!(share(0.0004), "< 0.1 %");
        assert_eq!(latency(Quantile::At(0.000_42)), "0.42 ms");
        assert_eq!(latency(Quantile::At(0.25)), "250 ms");
        assert_eq!(latency(Quantile::Above(3.2768)), "> 3.28 s");
        assert_eq!(span(time::Duration::milliseconds(850)), "850 ms");
    }
}
