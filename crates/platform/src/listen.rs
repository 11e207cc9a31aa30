//! Serving one listener: HTTP/1 and HTTP/2 (gRPC) on the same port, with
//! the limits a public port needs so a slow or silent client costs the
//! server a bounded amount (see [`ConnectionLimits`]):
//!
//! * a request's line and headers must arrive within the header read
//!   timeout, which also closes an HTTP/1 connection idle that long
//!   between requests (hyper's timer runs whenever it waits for a head);
//! * a request body that stalls longer than the body read timeout is
//!   refused (tower-http's `RequestBodyTimeoutLayer`, added by the server);
//! * at most `max_connections` are served at once: the accept loop waits
//!   for a free slot, so further clients wait in the kernel's backlog;
//! * HTTP/2 connections are pinged, so a peer that vanished is dropped.
//!
//! On shutdown the listener stops accepting and every connection is asked
//! to finish what it has in flight (HTTP/2 GOAWAY, HTTP/1 close after the
//! response); the future resolves when all of them have.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::config::ConnectionLimits;

/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take before the connection is dropped.
const H2_PING: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(10));

/// Serves `app` on `listener` within `limits` until `stop` resolves, then
/// drains (see the module's documentation). Handlers can extract the
/// client's `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection holds a receiver; the sender's `closed` says when
    // the last one ended.
    let (open_tx, open_rx) = watch::channel(());
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, a connection reset before it
                    // was taken: wait a moment rather than spin.
                    tracing::debug!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let open = open_rx.clone();
        let mut drain = drain_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_PING.0)
                .keep_alive_timeout(H2_PING.1);
            let mut connection = pin!(builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service)
            ));
            let mut draining = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::trace!(%peer, error = %error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = drain.wait_for(|d| *d), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}
