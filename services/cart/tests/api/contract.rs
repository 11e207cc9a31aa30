//! The contract every cart store passes, written once and run against each
//! adapter: SQLite always, PostgreSQL with `BAZAAR_TEST_POSTGRES_URL`,
//! Redis with `BAZAAR_TEST_REDIS_URL`.

use std::sync::Arc;

use bazaar_cart::domain::{Line, MAX_LINES, Quantity, Taken};
use bazaar_cart::store::{CartStore, Put, REDIS_TTL};
use bazaar_testkit::{Engine, redis_url};
use uuid::Uuid;

use crate::support::{redis_store, sql_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_passes_the_contract() {
    let test = sql_store(&Engine::Sqlite).await;
    suite(test.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_contract() {
    let Some(url) = bazaar_testkit::postgres_database() else {
        return;
    };
    let test = sql_store(&Engine::Postgres(url)).await;
    suite(test.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_passes_the_contract() {
    let Some(url) = redis_url() else {
        return;
    };
    let (test, redis) = redis_store(url).await;
    suite(test.store.clone()).await;

    // What only Redis has: one hash per cart, under the prefix, with a
    // time to live restarted by every change, gone when its last line goes.
    let keys = test.redis.as_ref().expect("the test's keys");
    let (user, product) = (Uuid::now_v7(), Uuid::now_v7());
    let key = redis.key(user);
    assert_eq!(key, format!("{}{user}", keys.prefix));
    put(&*test.store, user, product, 2).await;
    let ttl = keys.ttl(&key).await;
    let month = i64::try_from(REDIS_TTL.as_secs()).unwrap();
    assert!(month - 60 < ttl && ttl <= month, "TTL {ttl}");
    let hash = keys.hash(&key).await;
    assert_eq!(
        hash.get(&product.to_string()).map(String::as_str),
        Some("1:2")
    );
    test.store.remove(user, product).await.unwrap();
    assert_eq!(keys.ttl(&key).await, -2, "an empty cart leaves no key");
}

/// Everything a store promises, each part on users of its own.
async fn suite(store: Arc<dyn CartStore>) {
    let s = &*store;
    eprintln!("cart store contract on {}", s.kind());
    nobody_has_a_cart_until_they_put_something(s).await;
    lines_keep_the_order_they_were_first_added_in(s).await;
    carts_are_per_user(s).await;
    a_cart_holds_at_most_fifty_lines(s).await;
    clearing_empties_the_cart(s).await;
    taking_removes_only_lines_not_raised_meanwhile(s).await;
    concurrent_additions_stop_at_fifty_lines(&store).await;
    concurrent_raise_and_take_never_lose_the_raise(&store).await;
}

fn quantity(n: i64) -> Quantity {
    Quantity::new(n).expect("a quantity from 1 to 99")
}

fn pairs(lines: &[Line]) -> Vec<(Uuid, i64)> {
    lines
        .iter()
        .map(|l| (l.product_id, l.quantity.get()))
        .collect()
}

async fn put(store: &dyn CartStore, user: Uuid, product: Uuid, n: i64) -> Vec<(Uuid, i64)> {
    match store
        .put(user, Line::new(product, quantity(n)))
        .await
        .unwrap()
    {
        Put::Done(lines) => {
            let after = pairs(&lines);
            assert_eq!(
                after,
                pairs(&store.lines(user).await.unwrap()),
                "put answers the cart as stored on {}",
                store.kind()
            );
            after
        }
        Put::Full => panic!("unexpectedly full on {}", store.kind()),
    }
}

async fn lines(store: &dyn CartStore, user: Uuid) -> Vec<(Uuid, i64)> {
    pairs(&store.lines(user).await.unwrap())
}

fn taken(items: &[(Uuid, i64)]) -> Taken {
    let texts: Vec<(String, i64)> = items.iter().map(|(p, q)| (p.to_string(), *q)).collect();
    Taken::parse(texts.iter().map(|(p, q)| (p.as_str(), *q))).unwrap()
}

async fn nobody_has_a_cart_until_they_put_something(s: &dyn CartStore) {
    let user = Uuid::now_v7();
    assert_eq!(lines(s, user).await, vec![], "{}", s.kind());
    assert_eq!(
        pairs(&s.remove(user, Uuid::now_v7()).await.unwrap()),
        vec![]
    );
    s.clear(user).await.unwrap();
    s.remove_taken(user, &taken(&[(Uuid::now_v7(), 1)]))
        .await
        .unwrap();
    assert_eq!(lines(s, user).await, vec![], "{}", s.kind());
}

async fn lines_keep_the_order_they_were_first_added_in(s: &dyn CartStore) {
    let user = Uuid::now_v7();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // Product ids in an order other than the additions', so sorting by id
    // would show.
    put(s, user, c, 1).await;
    put(s, user, a, 2).await;
    assert_eq!(put(s, user, b, 3).await, vec![(c, 1), (a, 2), (b, 3)]);
    // Setting a line's quantity keeps its place and replaces the number.
    assert_eq!(
        put(s, user, c, 99).await,
        vec![(c, 99), (a, 2), (b, 3)],
        "{}",
        s.kind()
    );
    assert_eq!(put(s, user, c, 1).await, vec![(c, 1), (a, 2), (b, 3)]);
    // Removed and added again: last.
    let after = pairs(&s.remove(user, c).await.unwrap());
    assert_eq!(after, vec![(a, 2), (b, 3)], "{}", s.kind());
    assert_eq!(put(s, user, c, 4).await, vec![(a, 2), (b, 3), (c, 4)]);
    // The newest line removed, a new one still goes after every other.
    s.remove(user, c).await.unwrap();
    let d = Uuid::now_v7();
    assert_eq!(put(s, user, d, 5).await, vec![(a, 2), (b, 3), (d, 5)]);
    // Removing what is not there changes nothing.
    let after = pairs(&s.remove(user, Uuid::now_v7()).await.unwrap());
    assert_eq!(after, vec![(a, 2), (b, 3), (d, 5)], "{}", s.kind());
}

async fn carts_are_per_user(s: &dyn CartStore) {
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    put(s, alice, x, 1).await;
    assert_eq!(put(s, bob, y, 2).await, vec![(y, 2)], "{}", s.kind());
    s.remove(bob, x).await.unwrap();
    s.remove_taken(bob, &taken(&[(x, 99)])).await.unwrap();
    s.clear(bob).await.unwrap();
    assert_eq!(lines(s, alice).await, vec![(x, 1)], "{}", s.kind());
    assert_eq!(lines(s, bob).await, vec![]);
}

async fn a_cart_holds_at_most_fifty_lines(s: &dyn CartStore) {
    let user = Uuid::now_v7();
    let products: Vec<Uuid> = (0..MAX_LINES).map(|_| Uuid::now_v7()).collect();
    for product in &products {
        put(s, user, *product, 1).await;
    }
    let full: Vec<(Uuid, i64)> = products.iter().map(|p| (*p, 1)).collect();
    assert_eq!(lines(s, user).await, full);

    let extra = Uuid::now_v7();
    let answer = s.put(user, Line::new(extra, quantity(1))).await.unwrap();
    assert_eq!(answer, Put::Full, "a 51st line on {}", s.kind());
    assert_eq!(lines(s, user).await, full, "a refused line changes nothing");

    // A line already there can still be changed.
    let after = put(s, user, products[10], 7).await;
    assert_eq!(after.len(), MAX_LINES);
    assert_eq!(after[10], (products[10], 7));

    // With room again, the new line goes last.
    s.remove(user, products[0]).await.unwrap();
    let after = put(s, user, extra, 3).await;
    assert_eq!(after.len(), MAX_LINES, "{}", s.kind());
    assert_eq!(after[0].0, products[1]);
    assert_eq!(after[MAX_LINES - 1], (extra, 3));
}

async fn clearing_empties_the_cart(s: &dyn CartStore) {
    let user = Uuid::now_v7();
    for n in 1..=3 {
        put(s, user, Uuid::now_v7(), n).await;
    }
    s.clear(user).await.unwrap();
    assert_eq!(lines(s, user).await, vec![], "{}", s.kind());
    // Clearing again is fine; a new cart starts from nothing.
    s.clear(user).await.unwrap();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    put(s, user, b, 1).await;
    assert_eq!(
        put(s, user, a, 2).await,
        vec![(b, 1), (a, 2)],
        "{}",
        s.kind()
    );
}

async fn taking_removes_only_lines_not_raised_meanwhile(s: &dyn CartStore) {
    let user = Uuid::now_v7();
    let [a, b, c, d, absent] = [(); 5].map(|()| Uuid::now_v7());
    put(s, user, a, 2).await;
    put(s, user, b, 3).await;
    put(s, user, c, 1).await;
    put(s, user, d, 4).await;
    // The order took 2 of a (all of it), 2 of b (which holds 3 now), 5 of
    // c (more than it holds) and something no longer there; d is not named.
    s.remove_taken(user, &taken(&[(a, 2), (b, 2), (c, 5), (absent, 1)]))
        .await
        .unwrap();
    assert_eq!(lines(s, user).await, vec![(b, 3), (d, 4)], "{}", s.kind());
    // Duplicates count as their sum: 2 + 2 units of b take its 3.
    s.remove_taken(user, &taken(&[(b, 2), (b, 2)]))
        .await
        .unwrap();
    assert_eq!(lines(s, user).await, vec![(d, 4)], "{}", s.kind());
    // Taking the last line empties the cart; it starts again from nothing.
    s.remove_taken(user, &taken(&[(d, 4)])).await.unwrap();
    assert_eq!(lines(s, user).await, vec![]);
    assert_eq!(put(s, user, a, 1).await, vec![(a, 1)]);
}

async fn concurrent_additions_stop_at_fifty_lines(store: &Arc<dyn CartStore>) {
    let user = Uuid::now_v7();
    let first: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    for product in &first {
        put(&**store, user, *product, 1).await;
    }
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put(user, Line::new(Uuid::now_v7(), quantity(2)))
                    .await
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        match task.await.expect("task").expect("put") {
            Put::Done(_) => done += 1,
            Put::Full => {}
        }
    }
    let after = lines(&**store, user).await;
    assert_eq!(after.len(), MAX_LINES, "on {}", store.kind());
    assert_eq!(done, 10, "ten additions fit, on {}", store.kind());
    let kept: Vec<Uuid> = after[..40].iter().map(|(p, _)| *p).collect();
    assert_eq!(kept, first, "the first 40 lines stay first");
    assert!(after[40..].iter().all(|(_, q)| *q == 2));
}

async fn concurrent_raise_and_take_never_lose_the_raise(store: &Arc<dyn CartStore>) {
    // An order took 2 of a product while the customer raised it to 5:
    // whichever runs first, the cart ends with 5 (kept, or added again).
    let user = Uuid::now_v7();
    for round in 0..10 {
        let product = Uuid::now_v7();
        put(&**store, user, product, 2).await;
        let raise = {
            let store = store.clone();
            tokio::spawn(async move { store.put(user, Line::new(product, quantity(5))).await })
        };
        let take = {
            let store = store.clone();
            let taken = taken(&[(product, 2)]);
            tokio::spawn(async move { store.remove_taken(user, &taken).await })
        };
        assert!(matches!(raise.await.unwrap().unwrap(), Put::Done(_)));
        take.await.unwrap().unwrap();
        let after = lines(&**store, user).await;
        assert!(
            after.contains(&(product, 5)),
            "round {round} on {}: {after:?}",
            store.kind()
        );
        store.clear(user).await.unwrap();
    }
}
