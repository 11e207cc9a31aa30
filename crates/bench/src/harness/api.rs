//! The fleet's public API as the benchmarks call it: through the gateway,
//! with accounts of their own.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

/// A call not answered within this failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long inventory may take to show a new product's stock.
pub const STOCK_LIMIT: Duration = Duration::from_secs(30);
/// The password of every account a benchmark makes.
pub const PASSWORD: &str = "bench-password-1";

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its e-mail address.
    pub email: String,
    /// Its access token.
    pub token: String,
}

/// Calls the fleet's gateway.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client, for calls the helpers below do not cover.
    pub http: reqwest::Client,
    /// `http://<gateway>`.
    pub base: String,
}

impl Api {
    /// A client of the gateway at `gateway`.
    pub fn new(gateway: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            // No overall timeout on the client: the streams need none; each
            // call sets its own.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .context("cannot build an HTTP client")?,
            base: format!("http://{gateway}"),
        })
    }

    /// A request to `path`, with `token` as its bearer if given.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// One call; its status and JSON (`null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.request(method.clone(), path, token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}: no answer"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// One call that must answer `want`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, token, body).await?;
        if status != want {
            bail!("{method} {path} answered {status}, not {want}: {value}");
        }
        Ok(value)
    }

    /// Registers `email` with `role` and the benchmarks' password.
    pub async fn register(&self, email: &str, role: &str) -> anyhow::Result<()> {
        let body =
            json!({"email": email, "password": PASSWORD, "name": "Bench User", "role": role});
        self.expect(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&body),
            201,
        )
        .await
        .map(drop)
    }

    /// Signs `email` in.
    pub async fn login(&self, email: &str) -> anyhow::Result<Account> {
        let body = json!({"email": email, "password": PASSWORD});
        let tokens = self
            .expect(Method::POST, "/api/v1/auth/login", None, Some(&body), 200)
            .await?;
        Ok(Account {
            email: email.to_owned(),
            token: tokens["access_token"]
                .as_str()
                .context("no access token in the login answer")?
                .to_owned(),
        })
    }

    /// Registers and signs in `email`.
    pub async fn account(&self, email: String, role: &str) -> anyhow::Result<Account> {
        self.register(&email, role).await?;
        self.login(&email).await
    }

    /// Creates a product as `seller` (`fields` as `POST /api/v1/products`
    /// takes them) and returns its id once inventory shows its stock, so an
    /// order of it cannot meet "no stock record".
    pub async fn product(&self, seller: &Account, fields: &Value) -> anyhow::Result<String> {
        let created = self
            .expect(
                Method::POST,
                "/api/v1/products",
                Some(&seller.token),
                Some(fields),
                201,
            )
            .await?;
        let id = created["id"]
            .as_str()
            .context("no id in the created product")?
            .to_owned();
        let path = format!("/api/v1/inventory/{id}");
        let deadline = std::time::Instant::now() + STOCK_LIMIT;
        loop {
            let (status, _) = self.call(Method::GET, &path, None, None).await?;
            if status == 200 {
                return Ok(id);
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "inventory did not show product {id} within {} s",
                    STOCK_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The slug of the first category, to sell benchmark products in.
    pub async fn first_category(&self) -> anyhow::Result<String> {
        let categories = self
            .expect(Method::GET, "/api/v1/categories", None, None, 200)
            .await?;
        Ok(categories[0]["slug"]
            .as_str()
            .context("no category to sell in")?
            .to_owned())
    }
}
