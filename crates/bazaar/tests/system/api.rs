//! A client of one fleet's public port, as an application would write it:
//! sign up, put products on sale, fill a cart, check out, read orders and
//! payments. Every call goes through the gateway.

use std::time::{Duration, Instant};

use bazaar_testkit::Answer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{EVENTUALLY, Fleet};

/// The approving test card (API.md).
pub const CARD_OK: &str = "4242424242424242";
/// Declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Declined for insufficient funds.
pub const CARD_NO_FUNDS: &str = "4000000000009995";
/// A transient processor error, every time.
pub const CARD_FLAKY: &str = "4000000000000119";

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct User {
    /// Its id.
    pub id: String,
    /// Its access token.
    pub token: String,
}

/// Calls one fleet's gateway.
pub struct Api<'a> {
    /// The fleet, for its URL and its output in failure messages.
    pub fleet: &'a Fleet,
}

impl<'a> Api<'a> {
    /// A client of `fleet`.
    pub fn new(fleet: &'a Fleet) -> Self {
        Self { fleet }
    }

    /// Sends one request; `Err` only when no answer came at all.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        user: Option<&User>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .fleet
            .client()
            .request(method, format!("{}{path}", self.fleet.base_url()));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await
    }

    /// Sends one request, panicking when no answer came.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        user: Option<&User>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        self.try_send(method.clone(), path, user, &[], body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The JSON of an answer (`null` when empty), asserting its status, and
    /// for errors that it is problem+json with that status.
    pub async fn expect(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        let answer = Answer::read(response).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}\nfleet output:\n{}",
            answer.body,
            self.fleet.output()
        );
        let value = answer.json_or_null(what);
        if status >= 400 {
            assert_eq!(answer.content_type, "application/problem+json", "{what}");
            assert_eq!(value["status"], status, "{what}: {value}");
        }
        value
    }

    /// `GET path` as `user`, asserting 200.
    pub async fn get(&self, path: &str, user: Option<&User>) -> Value {
        let response = self.send(Method::GET, path, user, None).await;
        self.expect(response, 200, path).await
    }

    /// A new account of `role`, signed in.
    pub async fn user(&self, role: &str) -> User {
        let email = format!("{role}-{}@example.com", unique());
        let body =
            json!({"email": email, "password": "password123", "name": "Sys Test", "role": role});
        let response = self
            .send(Method::POST, "/api/v1/auth/register", None, Some(&body))
            .await;
        let account = self.expect(response, 201, "register").await;
        let body = json!({"email": email, "password": "password123"});
        let response = self
            .send(Method::POST, "/api/v1/auth/login", None, Some(&body))
            .await;
        let tokens = self.expect(response, 200, "login").await;
        User {
            id: account["id"].as_str().expect("id").to_owned(),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// `seller` puts a product priced `cents` EUR with `stock` units on
    /// sale; returns its id once inventory shows the stock.
    pub async fn product(&self, seller: &User, title: &str, cents: i64, stock: i64) -> String {
        let categories = self.get("/api/v1/categories", None).await;
        let category = categories[0]["slug"]
            .as_str()
            .unwrap_or_else(|| panic!("no category to sell in: {categories}"))
            .to_owned();
        let body = json!({
            "title": title,
            "description": "Made for the system tests.",
            "price": {"amount": cents, "currency": "EUR"},
            "category": category,
            "initial_stock": stock,
        });
        let response = self
            .send(Method::POST, "/api/v1/products", Some(seller), Some(&body))
            .await;
        let created = self.expect(response, 201, "create a product").await;
        let id = created["id"].as_str().expect("product id").to_owned();
        let path = format!("/api/v1/inventory/{id}");
        self.until(&format!("inventory shows {id}"), || async {
            let response = self.send(Method::GET, &path, None, None).await;
            (response.status() == 200).then_some(())
        })
        .await;
        id
    }

    /// The stock of `product`: `(available, reserved)`.
    pub async fn stock(&self, product: &str) -> (i64, i64) {
        let stock = self
            .get(&format!("/api/v1/inventory/{product}"), None)
            .await;
        (
            stock["available"].as_i64().expect("available"),
            stock["reserved"].as_i64().expect("reserved"),
        )
    }

    /// Sets `user`'s cart line of `product` to `quantity`.
    pub async fn put_in_cart(&self, user: &User, product: &str, quantity: i64) -> Value {
        let body = json!({"quantity": quantity});
        let response = self
            .send(
                Method::PUT,
                &format!("/api/v1/cart/items/{product}"),
                Some(user),
                Some(&body),
            )
            .await;
        self.expect(response, 200, "put in the cart").await
    }

    /// `POST /api/v1/orders` with `key` and `body`, as `user`.
    pub async fn order(&self, user: &User, key: &str, body: &Value) -> reqwest::Response {
        self.try_send(
            Method::POST,
            "/api/v1/orders",
            Some(user),
            &[("idempotency-key", key)],
            Some(body),
        )
        .await
        .unwrap_or_else(|e| panic!("POST /api/v1/orders: {e}"))
    }

    /// Places an order and answers it (202 or 200), asserting that.
    pub async fn place(&self, user: &User, body: &Value) -> Value {
        let key = unique();
        let response = self.order(user, &key, body).await;
        self.expect(response, 202, "place an order").await
    }

    /// Polls `user`'s order `id` until it is no longer pending; answers it.
    /// A saga that never ends shows its timeline in the failure.
    pub async fn settled(&self, user: &User, id: &str) -> Value {
        let path = format!("/api/v1/orders/{id}");
        let last = std::sync::Mutex::new(Value::Null);
        let what = format!("order {id} settles");
        let found = tokio::time::timeout(EVENTUALLY, async {
            loop {
                let order = self.get(&path, Some(user)).await;
                if order["status"] != "pending" {
                    return order;
                }
                *last.lock().unwrap() = order;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "{what}: not within {}s; the order as last read:\n{:#}\nfleet output:\n{}",
                EVENTUALLY.as_secs(),
                last.lock().unwrap(),
                self.fleet.output()
            )
        })
    }

    /// The payments of `user`'s order `id`.
    pub async fn payments(&self, user: &User, id: &str) -> Vec<Value> {
        let payments = self
            .get(&format!("/api/v1/payments?order_id={id}"), Some(user))
            .await;
        payments.as_array().expect("a list of payments").clone()
    }

    /// Polls `check` every 100 ms until it answers; panics after
    /// [`EVENTUALLY`] with the fleet's output.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(found) = check().await {
                return found;
            }
            assert!(
                started.elapsed() < EVENTUALLY,
                "{what}: not within {}s; fleet output:\n{}",
                EVENTUALLY.as_secs(),
                self.fleet.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An order body for `items` (`None`: the cart) paid with `card`.
pub fn order_body(items: Option<&[(&str, i64)]>, card: &str) -> Value {
    let mut body = json!({
        "payment": {"card_number": card, "exp_month": 12, "exp_year": 2099, "cvc": "123"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 7AA",
            "country": "GB",
        },
    });
    if let Some(items) = items {
        body["items"] = items
            .iter()
            .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
            .collect();
    }
    body
}

/// A string unique to this process and moment: for e-mails and keys.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
