//! Listing: search, filters, pagination and category counts; any query
//! string answers 200.

use reqwest::Method;
use serde_json::Value;

use crate::support::{apps, problem, product};

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_filters_and_pages() {
    for app in apps().await {
        let ann = app.user("seller").await;
        let bob = app.user("seller").await;
        let mut made = Vec::new();
        for (seller, title, category) in [
            (&ann, "Electric kettle", "home-kitchen"),
            (&ann, "Cast iron pan", "home-kitchen"),
            (&ann, "Noise cancelling headphones", "electronics"),
            (&bob, "Laptop stand", "electronics"),
            (&bob, "Mystery novel", "books"),
        ] {
            made.push(app.create(seller, &product(title, category, 1000)).await);
        }
        let on = app.on();

        // Newest first without a query.
        let all = app.ok("/api/v1/products").await;
        assert_eq!(all["total"], 5, "{on}");
        assert_eq!(all["page"], 1);
        assert_eq!(all["limit"], 20);
        assert_eq!(titles(&all)[0], "Mystery novel", "{on}");

        let found = app.ok("/api/v1/products?q=kettle").await;
        assert_eq!(titles(&found), ["Electric kettle"], "{on}");
        // Words are matched in the description too, and any case.
        let found = app.ok("/api/v1/products?q=FINE%20novel").await;
        assert_eq!(titles(&found), ["Mystery novel"], "{on}");
        let found = app.ok("/api/v1/products?q=headphones&category=books").await;
        assert_eq!(found["total"], 0, "{on}");

        let kitchen = app.ok("/api/v1/products?category=home-kitchen").await;
        assert_eq!(kitchen["total"], 2, "{on}");
        let bobs = app
            .ok(&format!("/api/v1/products?seller_id={}", bob.id))
            .await;
        assert_eq!(titles(&bobs), ["Mystery novel", "Laptop stand"], "{on}");

        let first = app.ok("/api/v1/products?limit=2&page=1").await;
        let third = app.ok("/api/v1/products?limit=2&page=3").await;
        assert_eq!(titles(&first).len(), 2);
        assert_eq!(titles(&third).len(), 1, "{on}");
        assert_eq!(third["total"], 5);
        assert_eq!(titles(&third)[0], "Electric kettle");
        let beyond = app.ok("/api/v1/products?limit=2&page=9").await;
        assert_eq!(titles(&beyond).len(), 0);

        // Any text is a search: operators, SQL, quotes, unicode, nothing.
        for q in [
            "%22%27)%3B%20DROP%20TABLE%20x%3B%20--",
            "*",
            "NEAR(",
            "%22",
            "kettle%20OR%20pan",
            "title%3Akettle",
            "%E2%98%83%20%F0%9F%98%80",
            "AND",
            "-",
            "^kettle",
            "",
            "%00",
        ] {
            let res = app.get(&format!("/api/v1/products?q={q}")).await;
            assert_eq!(res.status(), 200, "q={q} on {on}");
            let page: Value = res.json().await.unwrap();
            assert!(page["items"].is_array(), "q={q}");
        }

        for query in [
            "limit=0",
            "limit=101",
            "limit=1000000",
            "limit=abc",
            "page=0",
            "page=-1",
            "page=x",
            "seller_id=nope",
        ] {
            problem(app.get(&format!("/api/v1/products?{query}")).await, 422).await;
        }
    }
}

#[tokio::test]
async fn categories_count_products_on_sale() {
    for app in apps().await {
        let seller = app.user("seller").await;
        let before = app.ok("/api/v1/categories").await;
        let list = before.as_array().expect("a list");
        assert!(list.len() >= 6, "{}", app.on());
        assert!(list.iter().all(|c| c["product_count"] == 0));
        let books = list.iter().find(|c| c["slug"] == "books").expect("books");
        assert_eq!(books["name"], "Books");

        let a = app.create(&seller, &product("Atlas", "books", 2500)).await;
        app.create(&seller, &product("Cookbook", "books", 1500))
            .await;
        let count = |list: &Value, slug: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|c| c["slug"] == slug)
                .map(|c| c["product_count"].clone())
        };
        // This instance's own writes are seen at once, cache or not.
        let after = app.ok("/api/v1/categories").await;
        assert_eq!(count(&after, "books"), Some(2.into()), "{}", app.on());
        let path = format!("/api/v1/products/{}", a["id"].as_str().unwrap());
        let res = app
            .call(Method::DELETE, &path, Some(&seller.token), None)
            .await;
        assert_eq!(res.status(), 204);
        let after = app.ok("/api/v1/categories").await;
        assert_eq!(count(&after, "books"), Some(1.into()), "{}", app.on());
    }
}
