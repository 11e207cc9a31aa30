//! The catalog through the gateway, as a client sees it: sellers put
//! products on sale, anyone browses and searches, nobody else edits them;
//! and the first start seeds a demo catalog.

use bazaar_testkit::Answer;
use serde_json::{Value, json};

use crate::harness::{EVENTUALLY, Fleet, eventually};

/// A client of one fleet's public port.
struct Client<'a> {
    fleet: &'a Fleet,
}

impl Client<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .fleet
            .client()
            .request(method.clone(), format!("{}{path}", self.fleet.base_url()));
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

    /// The JSON of an answer, asserting its status.
    async fn expect(&self, response: reqwest::Response, status: u16, what: &str) -> Value {
        let answer = Answer::read(response).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}\nfleet output:\n{}",
            answer.body,
            self.fleet.output()
        );
        if status >= 400 {
            assert_eq!(answer.content_type, "application/problem+json", "{what}");
        }
        answer.json_or_null(what)
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.call(reqwest::Method::GET, path, None, None).await;
        self.expect(response, 200, path).await
    }

    /// A new account of `role`, signed in: its id and access token.
    async fn user(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@example.com", uuid_like());
        let body =
            json!({"email": email, "password": "password123", "name": "Sys Test", "role": role});
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(&body),
            )
            .await;
        let user = self.expect(response, 201, "register").await;
        let body = json!({"email": email, "password": "password123"});
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&body),
            )
            .await;
        let tokens = self.expect(response, 200, "login").await;
        (
            user["id"].as_str().expect("id").to_owned(),
            tokens["access_token"].as_str().expect("token").to_owned(),
        )
    }
}

/// A value unique enough for test e-mails.
fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}{}", std::process::id())
}

#[tokio::test]
async fn sellers_sell_and_everyone_browses_through_the_gateway() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let client = Client { fleet: &fleet };
    use reqwest::Method;

    // --no-seed: nothing on sale, every category empty.
    let empty = client.get("/api/v1/products").await;
    assert_eq!(empty["total"], 0, "--no-seed left products");
    let categories = client.get("/api/v1/categories").await;
    assert!(categories.as_array().expect("list").len() >= 6);

    let (seller_id, seller) = client.user("seller").await;
    let (_, other) = client.user("seller").await;
    let (_, customer) = client.user("customer").await;
    let body = json!({
        "title": "Hand-thrown teapot",
        "description": "Stoneware teapot with an ash glaze, holds a litre.",
        "price": {"amount": 6400, "currency": "EUR"},
        "category": "home-kitchen",
        "initial_stock": 5,
    });

    let response = client
        .call(Method::POST, "/api/v1/products", None, Some(&body))
        .await;
    client.expect(response, 401, "create without a token").await;
    let response = client
        .call(
            Method::POST,
            "/api/v1/products",
            Some(&customer),
            Some(&body),
        )
        .await;
    client.expect(response, 403, "a customer creates").await;
    let response = client
        .call(Method::POST, "/api/v1/products", Some(&seller), Some(&body))
        .await;
    let product = client.expect(response, 201, "a seller creates").await;
    let id = product["id"].as_str().expect("id").to_owned();
    assert_eq!(product["seller_id"], seller_id.as_str());
    let path = format!("/api/v1/products/{id}");
    assert_eq!(client.get(&path).await["title"], "Hand-thrown teapot");

    let found = client.get("/api/v1/products?q=teapot").await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["items"][0]["id"], id.as_str());
    let found = client
        .get("/api/v1/products?q=glaze&category=home-kitchen")
        .await;
    assert_eq!(found["total"], 1, "{found}");
    for q in ["%22%27)%3B%20DROP%20TABLE%20x%3B%20--", "*", "NEAR("] {
        let page = client.get(&format!("/api/v1/products?q={q}")).await;
        assert!(page["items"].is_array());
    }
    let response = client
        .call(Method::GET, "/api/v1/products?limit=500", None, None)
        .await;
    client.expect(response, 422, "limit too large").await;
    let response = client
        .call(Method::GET, "/api/v1/products/not-a-uuid", None, None)
        .await;
    client.expect(response, 404, "a malformed id").await;

    let patch = json!({"price": {"amount": 100, "currency": "EUR"}});
    let response = client
        .call(Method::PATCH, &path, Some(&other), Some(&patch))
        .await;
    client.expect(response, 403, "another seller edits").await;
    let response = client
        .call(Method::PATCH, &path, Some(&seller), Some(&patch))
        .await;
    let edited = client.expect(response, 200, "the seller edits").await;
    assert_eq!(edited["price"]["amount"], 100);

    let categories = client.get("/api/v1/categories").await;
    let kitchen = categories
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "home-kitchen")
        .cloned()
        .expect("home-kitchen");
    assert_eq!(kitchen["product_count"], 1, "{categories}");

    let response = client.call(Method::DELETE, &path, Some(&other), None).await;
    client.expect(response, 403, "another seller deletes").await;
    let response = client
        .call(Method::DELETE, &path, Some(&seller), None)
        .await;
    client.expect(response, 204, "the seller deletes").await;
    let response = client.call(Method::GET, &path, None, None).await;
    client.expect(response, 404, "a deleted product").await;

    // The public API description covers the catalog.
    let spec = client.get("/api/v1/openapi.json").await;
    for p in [
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/categories",
    ] {
        assert!(spec["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
}

#[tokio::test]
async fn the_first_start_seeds_a_demo_catalog() {
    let fleet = Fleet::start().await;
    let client = Client { fleet: &fleet };
    let seeded = eventually(EVENTUALLY, || async {
        let page = client.get("/api/v1/products?limit=1").await;
        (page["total"].as_i64().unwrap_or_default() >= 40).then_some(page)
    })
    .await;
    assert!(
        seeded.is_some(),
        "fewer than 40 products after seeding\n{}",
        fleet.output()
    );
    let categories = client.get("/api/v1/categories").await;
    let stocked = categories
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["product_count"].as_i64().unwrap_or_default() > 0)
        .count();
    assert!(stocked >= 6, "{categories}");
    let found = client.get("/api/v1/products?q=kettle").await;
    assert!(found["total"].as_i64().unwrap_or_default() >= 1, "{found}");
}
