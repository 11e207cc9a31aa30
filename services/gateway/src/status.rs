//! `GET /api/v1/status`: every service, each of its instances, and whether
//! it answers `/readyz` — plus who the instance says it is (over gRPC).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State as AxumState;
use bazaar_platform::problem::Json;
use bazaar_proto::platform::v1::{DescribeRequest, instance_client::InstanceClient};
use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use url::Url;
use utoipa::ToSchema;

use crate::State;

/// How long one instance may take to answer before it counts as unhealthy:
/// a frozen instance costs the status this much, not its caller's patience.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Lazily connected gRPC channels, one per instance URL.
#[derive(Clone, Debug, Default)]
pub struct Channels(Arc<Mutex<HashMap<Url, Channel>>>);

impl Channels {
    fn get(&self, url: &Url) -> Option<Channel> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = map.get(url) {
            return Some(channel.clone());
        }
        let channel = Endpoint::from_shared(url.to_string())
            .ok()?
            .connect_timeout(PROBE_TIMEOUT)
            .connect_lazy();
        map.insert(url.clone(), channel.clone());
        Some(channel)
    }
}

/// The whole answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Every service with its instances.
    pub services: Vec<ServiceStatus>,
}

/// One service.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceStatus {
    /// The service's name.
    pub name: String,
    /// Its instances.
    pub instances: Vec<InstanceStatus>,
}

/// One instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceStatus {
    /// Base URL of the instance.
    pub url: String,
    /// Whether it answered `/readyz` with 200.
    pub healthy: bool,
    /// Its instance name, when it told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Its process id, when it told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds it has been serving, when it told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// How often its supervisor restarted it, when it told us (the local
    /// launcher counts; on Kubernetes the pod's restart count says it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
}

/// Every service with each of its instances and whether it is ready.
///
/// Probes every instance concurrently; no secrets in the answer.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "gateway",
    responses((status = 200, description = "Every service and instance with its health.", body = Status))
)]
pub async fn handler(AxumState(state): AxumState<State>) -> Json<Status> {
    let services = state.upstreams.iter().map(|(name, upstream)| {
        let state = state.clone();
        async move {
            let instances = upstream
                .reads
                .endpoints()
                .urls()
                .into_iter()
                .map(|url| probe(&state, url));
            ServiceStatus {
                name: name.clone(),
                instances: futures_util::future::join_all(instances).await,
            }
        }
    });
    let mut services = futures_util::future::join_all(services).await;
    // The front door first, then the rest by name.
    services.sort_by_key(|s| (s.name != "gateway", s.name.clone()));
    Json(Status { services })
}

async fn probe(state: &State, url: Url) -> InstanceStatus {
    let ready = async {
        let uri = format!("{}/readyz", url.as_str().trim_end_matches('/'));
        let request = http::Request::get(uri).body(Full::new(Bytes::new())).ok()?;
        let response = state.http.request(request).await.ok()?;
        Some(response.status() == http::StatusCode::OK)
    };
    let describe = async {
        let channel = state.channels.get(&url)?;
        let mut request = tonic::Request::new(DescribeRequest {});
        request.set_timeout(PROBE_TIMEOUT);
        InstanceClient::new(channel)
            .describe(request)
            .await
            .ok()
            .map(tonic::Response::into_inner)
    };
    let (ready, info) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, ready),
        tokio::time::timeout(PROBE_TIMEOUT, describe),
    );
    let info = info.ok().flatten();
    InstanceStatus {
        url: url.as_str().trim_end_matches('/').to_owned(),
        healthy: ready.ok().flatten().unwrap_or(false),
        instance: info.as_ref().map(|i| i.instance.clone()),
        pid: info.as_ref().map(|i| i.pid),
        uptime_seconds: info.as_ref().map(|i| i.uptime_seconds),
        restarts: info.and_then(|i| i.restarts),
    }
}
