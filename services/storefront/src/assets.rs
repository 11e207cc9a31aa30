//! The storefront's own stylesheet and script, compiled into the binary and
//! served from `/assets/`: no CDN, nothing fetched at run time. Their URLs
//! carry a hash of their content, so browsers may cache them for good.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::sync::LazyLock;

/// One compiled-in file.
pub struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type,
            body,
        }
    }

    /// A short hash of the content, computed once per asset.
    fn version(&self) -> &'static str {
        static VERSIONS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
            ALL.iter()
                .map(|a| {
                    let digest = Sha256::digest(a.body.as_bytes());
                    (
                        a.name,
                        digest[..6].iter().map(|b| format!("{b:02x}")).collect(),
                    )
                })
                .collect()
        });
        VERSIONS
            .iter()
            .find(|(name, _)| *name == self.name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The URL to link, with its content hash.
    pub fn url(&self) -> String {
        format!("/assets/{}?v={}", self.name, self.version())
    }
}

const ALL: [&Asset; 3] = [&CSS, &JS, &OPS_JS];

/// The stylesheet.
pub static CSS: Asset = Asset::new(
    "app.css",
    "text/css; charset=utf-8",
    include_str!("../assets/app.css"),
);
/// The script: progressive enhancement only; every flow works without it.
pub static JS: Asset = Asset::new(
    "app.js",
    "text/javascript; charset=utf-8",
    include_str!("../assets/app.js"),
);
/// The ops console's script: refreshes the console in place.
pub static OPS_JS: Asset = Asset::new(
    "ops.js",
    "text/javascript; charset=utf-8",
    include_str!("../assets/ops.js"),
);

/// `?v=`: the content hash the page linked.
#[derive(Deserialize)]
pub struct Version {
    v: Option<String>,
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>, Query(query): Query<Version>) -> Response {
    let Some(asset) = ALL.into_iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if query.v.as_deref() == Some(asset.version()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.body,
    )
        .into_response()
}
