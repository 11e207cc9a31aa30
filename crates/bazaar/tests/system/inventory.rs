//! Inventory through the gateway, as a client sees it: stock readable by
//! anyone, set only by its seller, created by putting a product on sale in
//! the catalog.

use std::time::{Duration, Instant};

use bazaar_testkit::Answer;
use serde_json::{Value, json};

use crate::harness::{EVENTUALLY, Fleet};

/// A client of one fleet's public port.
struct Client<'a> {
    fleet: &'a Fleet,
}

impl Client<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fleet.base_url())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.fleet.client().request(method.clone(), self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn json(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        self.answer(response, status, what).await.json(what)
    }

    async fn problem(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        let answer = self.answer(response, status, what).await;
        let problem = answer.json(what);
        assert_eq!(answer.content_type, "application/problem+json", "{what}");
        assert_eq!(problem["status"], status, "{what}: {problem}");
        problem
    }

    /// The answer read, asserting its status (the fleet's output shown
    /// when it is not).
    async fn answer(&self, response: reqwest::Response, status: u16, what: &str) -> Answer {
        let answer = Answer::read(response).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}\nfleet output:\n{}",
            answer.body,
            self.fleet.output()
        );
        answer
    }

    /// A new signed-in account of `role`: its access token.
    async fn user(&self, role: &str) -> String {
        let email = format!("{role}-{}@example.com", nanos());
        let body =
            json!({"email": email, "password": "password123", "name": "Sys Test", "role": role});
        let res = self
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(&body),
            )
            .await;
        self.json(res, 201, "register").await;
        let body = json!({"email": email, "password": "password123"});
        let res = self
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&body),
            )
            .await;
        let tokens = self.json(res, 200, "login").await;
        tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test]
async fn inventory_through_the_gateway() {
    let fleet = Fleet::start().await;
    let client = Client { fleet: &fleet };
    let unknown = "/api/v1/inventory/0191f5a2-7c1e-7d3a-9b1e-3f2a1c4d5e6f";

    let res = client.send(reqwest::Method::GET, unknown, None, None).await;
    client.problem(res, 404, "GET an unknown product").await;
    let res = client
        .send(
            reqwest::Method::GET,
            "/api/v1/inventory/not-a-uuid",
            None,
            None,
        )
        .await;
    client.problem(res, 404, "GET a non-UUID").await;
    let body = json!({"on_hand": 3});
    let res = client
        .send(reqwest::Method::PUT, unknown, None, Some(&body))
        .await;
    client.problem(res, 401, "PUT without a token").await;

    // A seller puts a product on sale with stock; inventory learns of it
    // from catalog's event.
    let seller = client.user("seller").await;
    let res = client
        .send(reqwest::Method::GET, "/api/v1/categories", None, None)
        .await;
    let categories = client.json(res, 200, "categories").await;
    let category = categories[0]["slug"]
        .as_str()
        .unwrap_or_else(|| panic!("no category to sell in: {categories}"))
        .to_owned();
    let product = json!({
        "title": "Enamel kettle",
        "description": "Boils water.",
        "price": {"amount": 2999, "currency": "EUR"},
        "category": category,
        "initial_stock": 7,
    });
    let res = client
        .send(
            reqwest::Method::POST,
            "/api/v1/products",
            Some(&seller),
            Some(&product),
        )
        .await;
    let created = client.json(res, 201, "create a product").await;
    let id = created["id"].as_str().expect("product id").to_owned();
    let path = format!("/api/v1/inventory/{id}");

    let started = Instant::now();
    let stock = loop {
        let res = client.send(reqwest::Method::GET, &path, None, None).await;
        if res.status() == 200 {
            break res.json::<Value>().await.expect("stock JSON");
        }
        assert!(
            started.elapsed() < EVENTUALLY,
            "inventory never showed {id}; fleet output:\n{}",
            fleet.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        stock,
        json!({"product_id": id, "available": 7, "reserved": 0})
    );

    // A customer cannot change it; its seller can.
    let customer = client.user("customer").await;
    let res = client
        .send(reqwest::Method::PUT, &path, Some(&customer), Some(&body))
        .await;
    client.problem(res, 403, "a customer sets stock").await;
    let res = client
        .send(reqwest::Method::PUT, &path, Some(&seller), Some(&body))
        .await;
    let stock = client.json(res, 200, "its seller sets stock").await;
    assert_eq!(stock["available"], 3);
}
