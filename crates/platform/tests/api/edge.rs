//! What a hostile client can cost a service's port: made-up gRPC paths do
//! not grow `/metrics`, and slow or silent connections (slowloris) are
//! closed or kept waiting in the backlog instead of held open.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{App, spawn, spawn_with};

/// Long enough for any honest server answer on a loaded machine; the
/// tests below wait this long for a close that must come.
const PATIENCE: Duration = Duration::from_secs(10);

async fn metrics(app: &App) -> String {
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    res.text().await.unwrap()
}

/// Reads until the server closes the connection; what it sent meanwhile.
/// Panics if it keeps the connection open past [`PATIENCE`].
async fn closed_by_server(stream: &mut TcpStream, what: &str) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "{what}: the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn made_up_grpc_methods_are_not_metric_labels() {
    let app = spawn().await;
    let h2: hyper_util::client::legacy::Client<_, String> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for n in 0..150 {
        let path = format!("/grpc.health.v1.Health/MadeUp{n:04}");
        app.http
            .post(app.url(&path))
            .header("content-type", "application/grpc")
            .send()
            .await
            .unwrap();
        let request = http::Request::post(app.url(&path))
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap();
        h2.request(request).await.unwrap();
    }
    let text = metrics(&app).await;
    assert!(
        !text.contains("MadeUp"),
        "a made-up method became a label:\n{text}"
    );
    assert!(
        text.contains(r#"route="/grpc.health.v1.Health/{*rest}""#),
        "the calls are counted under their service's template:\n{text}"
    );
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    let app = spawn_with(|c| c.limits.header_read_timeout = Duration::from_millis(300)).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    for (n, stream) in slow.iter_mut().enumerate() {
        closed_by_server(stream, &format!("slow client {n}")).await;
    }
    // Honest clients are served as before.
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn idle_connections_are_closed_after_their_request() {
    let app = spawn_with(|c| c.limits.header_read_timeout = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(&mut stream, "an idle keep-alive connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stalled_body_is_refused() {
    let app = spawn_with(|c| c.limits.body_read_timeout = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":",
        )
        .await
        .unwrap();
    let mut head = [0_u8; 12];
    let read = tokio::time::timeout(PATIENCE, stream.read_exact(&mut head)).await;
    assert!(read.is_ok(), "the server waits for the body forever");
    let status = String::from_utf8_lossy(&head);
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "a stalled body gets a 4xx: {status}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let app = spawn_with(|c| c.limits.max_connections = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0_u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        held.push(stream);
    }
    // The third is connected by the kernel, but not served while two are.
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0_u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut head)).await;
    assert!(early.is_err(), "served past the cap of 2 connections");
    drop(held.pop());
    let answer = closed_by_server(&mut third, "the third client").await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served once a slot was free: {answer}"
    );
}
