//! The storefront through the gateway, as a browser without JavaScript
//! sees it: HTML pages with the right statuses and headers, sign-in
//! redirects, forms that need their CSRF token, and a session held in
//! `HttpOnly`, `SameSite` cookies (handled here by hand).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, SET_COOKIE};

use crate::api::{Api, User, unique};
use crate::harness::Fleet;

/// A browser's view of one fleet: no redirects followed, cookies by hand.
struct Browser<'a> {
    fleet: &'a Fleet,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` seen, for checking their attributes.
    set: Vec<String>,
}

/// One answer, read.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn is_html(&self) -> bool {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
    }
}

impl<'a> Browser<'a> {
    fn new(fleet: &'a Fleet) -> Self {
        Self {
            fleet,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            cookies: BTreeMap::new(),
            set: Vec::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.fleet.base_url()));
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", header);
        }
        if let Some(form) = form {
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            request = request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for cookie in headers.get_all(SET_COOKIE) {
            let cookie = cookie.to_str().expect("a text cookie").to_owned();
            let first = cookie.split(';').next().unwrap_or_default();
            let (name, value) = first.split_once('=').expect("name=value");
            if cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set.push(cookie);
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    fn csrf(&self) -> String {
        self.cookies
            .get("bazaar_csrf")
            .cloned()
            .expect("a CSRF cookie")
    }

    /// The access token in the session cookie, to look behind the pages
    /// through the API.
    fn user(&self) -> User {
        User {
            id: String::new(),
            token: self
                .cookies
                .get("bazaar_access")
                .cloned()
                .expect("signed in"),
        }
    }
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn pages_are_html_with_the_right_status_and_headers() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let mut browser = Browser::new(&fleet);

    let home = browser.get("/").await;
    assert_eq!(home.status, 200, "{}\n{}", home.body, fleet.output());
    assert!(home.is_html());
    let csp = home
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a CSP on the home page");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    assert!(home.body.contains("/assets/app.css?v="), "own stylesheet");

    // Missing and malformed products, unknown paths: the 404 page.
    let missing = uuid_like();
    for path in [
        format!("/products/{missing}"),
        "/products/not-an-id".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(page.is_html(), "{path}: {:?}", page.headers);
        assert!(page.body.contains("Not found"), "{path}: {}", page.body);
        assert!(
            page.headers.contains_key("content-security-policy"),
            "{path}"
        );
    }

    // Pages of a signed-in user send others to sign in, and back.
    for (path, next) in [
        ("/cart", "/login?next=%2Fcart"),
        ("/orders", "/login?next=%2Forders"),
        ("/checkout", "/login?next=%2Fcheckout"),
        ("/orders?page=2", "/login?next=%2Forders%3Fpage%3D2"),
        ("/sell", "/login?next=%2Fsell"),
    ] {
        let page = browser.get(path).await;
        assert!(
            page.status == 303 || page.status == 302,
            "{path}: {}",
            page.status
        );
        assert_eq!(page.location(), next, "{path}");
    }
    // The live stream answers 401 rather than a page.
    assert_eq!(browser.get("/live").await.status, 401);
    let login = browser.get("/login?next=%2Fcart").await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("name=\"next\" value=\"/cart\""),
        "{}",
        login.body
    );
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_the_session_is_cookies() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let teapot = api.product(&seller, "Storefront teapot", 2450, 10).await;
    let mut browser = Browser::new(&fleet);

    // The first page sets the CSRF cookie, and the form carries it.
    let form = browser.get("/register").await;
    assert_eq!(form.status, 200);
    let csrf = browser.csrf();
    assert!(
        form.body.contains(&format!("value=\"{csrf}\"")),
        "the form's hidden field"
    );
    let email = format!("shopper-{}@example.com", unique());
    let fields = |csrf: Option<String>| {
        let mut f = vec![
            ("email", email.clone()),
            ("name", "Zoë Shopper".to_owned()),
            ("password", "password123".to_owned()),
            ("role", "customer".to_owned()),
        ];
        if let Some(t) = csrf {
            f.push(("csrf", t));
        }
        f
    };
    for (what, token) in [("no token", None), ("a wrong token", Some("x".repeat(43)))] {
        let mut f = fields(None);
        if let Some(t) = token {
            f.push(("csrf", t));
        }
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = browser.post("/register", &pairs).await;
        assert_eq!(page.status, 403, "{what}: {}", page.body);
        assert!(page.is_html(), "{what}");
    }
    // Nothing changed: there is no such account.
    let login = api
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&serde_json::json!({"email": email, "password": "password123"})),
        )
        .await;
    assert_eq!(login.status(), 401, "an account was made without a token");

    // With the token: registered and signed in at once.
    let f = fields(Some(csrf.clone()));
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registered = browser.post("/register", &pairs).await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    assert_eq!(registered.location(), "/");
    for name in ["bazaar_access", "bazaar_refresh", "bazaar_csrf"] {
        let cookie = browser
            .set
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", browser.set));
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
    }
    let cart = browser.get("/cart").await;
    assert_eq!(cart.status, 200, "signed in by the cookies: {}", cart.body);
    assert!(cart.body.contains("Your cart is empty"), "{}", cart.body);
    assert!(cart.body.contains("Zoë Shopper"), "the name in the header");

    // A signed-in form without the right token changes nothing.
    let shopper = browser.user();
    for token in ["", "wrong-token-wrong-token-wrong-token-wrong"] {
        let page = browser
            .post(
                "/cart/items",
                &[("product_id", &teapot), ("quantity", "2"), ("csrf", token)],
            )
            .await;
        assert_eq!(page.status, 403, "{token:?}: {}", page.body);
    }
    let items = api.get("/api/v1/cart", Some(&shopper)).await;
    assert_eq!(items["items"], serde_json::json!([]), "the cart changed");
    // With it, the line is there.
    let added = browser
        .post(
            "/cart/items",
            &[("product_id", &teapot), ("quantity", "2"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let items = api.get("/api/v1/cart", Some(&shopper)).await;
    assert_eq!(items["items"][0]["quantity"], 2, "{items}");
    let cart = browser.get("/cart").await;
    assert!(cart.body.contains("Storefront teapot"), "{}", cart.body);
    assert!(cart.body.contains("49.00 EUR"), "the total: {}", cart.body);

    // A customer is not a seller.
    assert_eq!(browser.get("/sell").await.status, 403);

    // Signing out clears the session; signing in goes back, locally only.
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!browser.cookies.contains_key("bazaar_access"));
    assert_eq!(browser.get("/cart").await.status, 303);
    let wrong = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", "not-the-password"),
                ("next", "/cart"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.is_html());
    assert!(!wrong.body.contains("not-the-password"), "password echoed");
    assert!(wrong.body.contains("role=\"alert\""), "announced");
    let again = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", "password123"),
                ("next", "//evil.example/"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.location(), "/", "never to another site");
    let back = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", "password123"),
                ("next", "/cart"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(back.location(), "/cart");

    // The same e-mail again: 409, said next to the field.
    let f = fields(Some(csrf.clone()));
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let taken = browser.post("/register", &pairs).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body.contains("already exists"), "{}", taken.body);
    assert!(!taken.body.contains("password123"), "password echoed");
    assert!(taken.body.contains("aria-describedby=\"email-error\""));
}

/// A product id nobody has (a UUIDv4 shape; the catalog makes v7 ids).
fn uuid_like() -> String {
    format!("00000000-0000-4000-8000-{:012x}", std::process::id())
}

/// Requests each backend service has answered on its public API
/// (`/api/...` routes only: health checks, metric scrapes and gRPC probes
/// do not count), from every instance's own `/metrics`.
async fn api_requests(fleet: &Fleet) -> BTreeMap<String, u64> {
    let status = fleet.status().await.expect("the fleet's status");
    let mut counts = BTreeMap::new();
    for service in &status.services {
        if matches!(service.name.as_str(), "gateway" | "storefront") {
            continue;
        }
        let mut total = 0;
        for instance in &service.instances {
            total += bazaar_testkit::scrape(fleet.client(), &instance.url)
                .await
                .samples("http_requests_total")
                .filter(|s| s.label("route").is_some_and(|r| r.starts_with("/api/")))
                .map(|s| s.value as u64)
                .sum::<u64>();
        }
        counts.insert(service.name.clone(), total);
    }
    counts
}

/// What one page load cost each backend service: the difference of two
/// [`api_requests`] readings, services with no calls left out.
fn calls(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn each_page_asks_each_backend_once_and_no_more() {
    let fleet = Fleet::start_with(&["--no-seed"]).await;
    let api = Api::new(&fleet);
    let seller = api.user("seller").await;
    let lamp = api.product(&seller, "Fan-out lamp", 3900, 10).await;
    let mug = api.product(&seller, "Fan-out mug", 1200, 10).await;
    let mut browser = Browser::new(&fleet);
    browser.get("/register").await;
    let csrf = browser.csrf();
    let email = format!("fanout-{}@example.com", unique());
    let registered = browser
        .post(
            "/register",
            &[
                ("email", &email),
                ("name", "Fan Out"),
                ("password", "password123"),
                ("role", "customer"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    let shopper = browser.user();
    api.put_in_cart(&shopper, &lamp, 1).await;
    api.put_in_cart(&shopper, &mug, 2).await;
    // Warm: the storefront has identity's keys and a connection to each.
    assert_eq!(browser.get("/cart").await.status, 200);

    let one = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    // Each page's calls, started together (so one round trip per service;
    // the cart page asks catalog for its lines after the cart answered).
    // Two pages per service would show as a doubled count here.
    for (path, expected) in [
        (
            format!("/products/{lamp}"),
            one(&[("catalog", 1), ("inventory", 1), ("notifications", 1)]),
        ),
        ("/".to_owned(), one(&[("catalog", 2), ("notifications", 1)])),
        (
            "/cart".to_owned(),
            one(&[("cart", 1), ("catalog", 2), ("notifications", 1)]),
        ),
        (
            "/products?q=lamp".to_owned(),
            one(&[("catalog", 2), ("notifications", 1)]),
        ),
    ] {
        let before = api_requests(&fleet).await;
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let after = api_requests(&fleet).await;
        assert_eq!(calls(&before, &after), expected, "{path}");
    }
}
