//! What every public request passes before it is routed: the access token
//! check and the rate limit.
//!
//! A bearer token is verified here so a forged or expired one never reaches
//! a service; the services verify it again themselves (a token is a claim,
//! not a header to trust because the gateway looked at it). A request
//! without one is passed on: whether an endpoint needs a user is the owning
//! service's business. `/api/v1/auth/*` is passed on unchecked, so login,
//! refresh and the keys work for a client still holding a stale token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bazaar_platform::auth::{self, Verifier};
use bazaar_platform::problem::Problem;
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use prometheus_client::metrics::counter::Counter;

use crate::limit::{Client, Decision, Limiter};
use crate::settings::IpNet;

/// The edge's state.
#[derive(Clone, Debug)]
pub struct Edge {
    /// Checks tokens against identity's keys; `None` without identity.
    pub verifier: Option<Verifier>,
    /// Per-client buckets.
    pub limiter: Limiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted: Arc<[IpNet]>,
    /// Requests refused with 429.
    pub limited: Counter,
    /// Requests refused because of their token.
    pub refused: Counter,
}

/// Where tokens are not checked at the edge.
const UNCHECKED: &str = "/api/v1/auth";

/// Whether `path` goes to a service and its token must be checked first.
fn checks_token(path: &str) -> bool {
    let auth = path
        .strip_prefix(UNCHECKED)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    !auth && crate::route(path).is_some()
}

/// The middleware.
pub async fn guard(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let verdict = match &edge.verifier {
        Some(verifier)
            if auth::bearer(req.headers()).is_some() && checks_token(req.uri().path()) =>
        {
            Some(verifier.verify_headers(req.headers()).await)
        }
        _ => None,
    };
    if edge.limiter.is_on() {
        // A user's budget follows them across addresses; anyone else's,
        // including a bad token's, is their address's.
        let client = match &verdict {
            Some(Ok(claims)) => Client::User(claims.sub.clone()),
            _ => Client::ip(client_ip(&req, &edge.trusted)),
        };
        if let Decision::Deny { retry_after } = edge.limiter.check(&client).await {
            edge.limited.inc();
            return too_many_requests(retry_after);
        }
    }
    if let Some(Err(error)) = verdict {
        // Without identity's keys nothing can be said about the token: 503.
        if matches!(error, auth::AuthError::Keys(_)) {
            tracing::warn!(error = %error, "cannot check an access token");
            return Problem::from(error).into_response();
        }
        edge.refused.inc();
        tracing::debug!(error = %error, "access token refused at the edge");
        let mut response = Problem::from(error).into_response();
        // RFC 6750 §3: tell the client its token is the problem.
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        return response;
    }
    next.run(req).await
}

fn too_many_requests(retry_after: u64) -> Response {
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many requests; try again in {retry_after} s."),
    )
    .with_kind("rate-limited", "Too many requests")
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// The address of the peer that connected to the gateway.
pub fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
        .to_canonical()
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the nearest address in `X-Forwarded-For` that is not one.
/// Whatever a client writes into the header itself is further left, so it
/// is never reached.
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> IpAddr {
    forwarded_client(peer_ip(req), req.headers(), trusted)
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or("").rsplit(','));
    for hop in hops {
        // A hop we cannot read ends what we can believe.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// The `X-Forwarded-For` to send upstream: the believed chain plus the
/// peer. From an untrusted peer, whatever it claimed is dropped.
pub fn forwarded_for(req: &Request, trusted: &[IpNet]) -> Option<HeaderValue> {
    let peer = peer_ip(req);
    let trusted_peer = trusted.iter().any(|net| net.contains(peer));
    let earlier: Vec<&str> = if trusted_peer {
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    let peer = peer.to_string();
    let value = if earlier.is_empty() {
        peer
    } else {
        format!("{}, {peer}", earlier.join(", "))
    };
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let headers = xff(&["1.2.3.4"]);
        assert_eq!(
            forwarded_client(ip("203.0.113.5"), &headers, &[]),
            ip("203.0.113.5")
        );
        let lb = [IpNet::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            forwarded_client(ip("203.0.113.5"), &headers, &lb),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = [IpNet::parse("10.0.0.0/8").unwrap()];
        // The client made up "6.6.6.6"; the load balancer appended what it saw.
        let headers = xff(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), &headers, &proxies),
            ip("198.51.100.7")
        );
        // Nothing but proxies: the farthest one is all we know.
        let headers = xff(&["10.9.9.9"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), &headers, &proxies),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last address we could read.
        let headers = xff(&["198.51.100.7, junk, 10.1.1.1"]);
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), &headers, &proxies),
            ip("10.1.1.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            forwarded_client(ip("10.0.0.2"), &HeaderMap::new(), &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn auth_paths_and_unrouted_paths_skip_the_token_check() {
        assert!(checks_token("/api/v1/products"));
        assert!(checks_token("/api/v1/users/me"));
        assert!(!checks_token("/api/v1/auth/login"));
        assert!(!checks_token("/api/v1/auth"));
        assert!(!checks_token("/api/v1/status"));
        assert!(!checks_token("/api/v1/openapi.json"));
        assert!(checks_token("/api/v1/users"));
    }
}
