//! The demo catalog: on the first `bazaar up` (unless `--no-seed`), three
//! demo sellers put about fifty products on sale, through the public API
//! via the gateway exactly as a client would (register or sign in, then
//! `POST /api/v1/products`), so inventory gets their stock through the
//! same events as for any product.
//!
//! Seeding never fails the launcher: a problem is reported as a warning and
//! the fleet keeps running. Success leaves `<data-dir>/.seeded`, so later
//! starts skip it; a run cut short leaves no marker and the next start
//! completes it, skipping the products a demo seller already has (by title).
//! Requests are paced well under the gateway's default rate limit, and a
//! 429 or 503 is retried after a pause.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// The file whose presence in the data directory means "seeded already".
pub const MARKER: &str = ".seeded";

/// The demo sellers' password (a demo, on a development fleet).
const PASSWORD: &str = "demo-seller-password";

/// The demo sellers: e-mail and display name.
const SELLERS: [(&str, &str); 3] = [
    ("northwind@demo.bazaar.test", "Northwind Goods"),
    ("lumen@demo.bazaar.test", "Atelier Lumen"),
    ("harbor@demo.bazaar.test", "Harbor & Pine"),
];

/// Pause between requests: 20 per second at most, far below the gateway's
/// default budget of 50 per second per client.
const PACE: Duration = Duration::from_millis(50);

/// One demo product: category slug, title, description, price in cents,
/// currency.
type Item = (&'static str, &'static str, &'static str, i64, &'static str);

/// The demo products, eight categories, six or more each.
const PRODUCTS: &[Item] = &[
    (
        "electronics",
        "Noise-cancelling headphones",
        "Over-ear wireless headphones with 30 hours of battery and active noise cancelling.",
        19900,
        "EUR",
    ),
    (
        "electronics",
        "Mechanical keyboard",
        "Tenkeyless keyboard with hot-swappable tactile switches and a braided USB-C cable.",
        8900,
        "EUR",
    ),
    (
        "electronics",
        "4K monitor 27 inch",
        "IPS panel, 60 Hz, factory calibrated, with a height-adjustable stand.",
        32900,
        "EUR",
    ),
    (
        "electronics",
        "Portable power bank",
        "20000 mAh, two USB-C ports, charges a laptop at 65 W.",
        4900,
        "EUR",
    ),
    (
        "electronics",
        "Smart LED bulb",
        "Warm to daylight white and 16 million colours, works without a hub.",
        1999,
        "EUR",
    ),
    (
        "electronics",
        "Wireless mouse",
        "Silent clicks, three devices at once, a year on one AA battery.",
        2999,
        "USD",
    ),
    (
        "electronics",
        "Bluetooth speaker",
        "Waterproof speaker with deep bass and 12 hours of play.",
        5900,
        "EUR",
    ),
    (
        "books",
        "The Quiet Garden",
        "A novel of three generations and the walled garden that outlives them.",
        1899,
        "EUR",
    ),
    (
        "books",
        "Rust in Practice",
        "Ownership, async and systems design, explained through real services.",
        4499,
        "EUR",
    ),
    (
        "books",
        "A Short History of Maps",
        "How people drew the world, from clay tablets to satellites.",
        2450,
        "GBP",
    ),
    (
        "books",
        "Night Trains of Europe",
        "A travel guide to sleeper routes, with timetables and tips.",
        2199,
        "EUR",
    ),
    (
        "books",
        "The Bread Book",
        "Sourdough, rye and flatbreads: 80 recipes from starter to crust.",
        2999,
        "EUR",
    ),
    (
        "books",
        "Stars for Beginners",
        "A field guide to the night sky with seasonal star charts.",
        1599,
        "EUR",
    ),
    (
        "home-kitchen",
        "Electric kettle",
        "1.7 litre stainless steel kettle with temperature control for tea.",
        4999,
        "EUR",
    ),
    (
        "home-kitchen",
        "Cast iron skillet",
        "Pre-seasoned 26 cm skillet for stove, oven and campfire.",
        3900,
        "EUR",
    ),
    (
        "home-kitchen",
        "Chef's knife",
        "20 cm knife of hardened Japanese steel with an olive wood handle.",
        7900,
        "EUR",
    ),
    (
        "home-kitchen",
        "Linen tea towels",
        "Set of three stonewashed linen towels that dry without lint.",
        2400,
        "EUR",
    ),
    (
        "home-kitchen",
        "Pour-over coffee set",
        "Ceramic dripper, glass carafe and 100 paper filters.",
        3500,
        "EUR",
    ),
    (
        "home-kitchen",
        "Wool throw blanket",
        "Soft merino wool throw in a herringbone weave.",
        8900,
        "EUR",
    ),
    (
        "fashion",
        "Merino crew sweater",
        "Fine-knit merino sweater, warm but light, machine washable.",
        8900,
        "EUR",
    ),
    (
        "fashion",
        "Leather belt",
        "Full-grain vegetable-tanned leather with a brass buckle.",
        4500,
        "EUR",
    ),
    (
        "fashion",
        "Canvas sneakers",
        "Classic low-top sneakers with organic cotton canvas.",
        6500,
        "EUR",
    ),
    (
        "fashion",
        "Rain jacket",
        "Packable waterproof jacket with taped seams and a hood.",
        11900,
        "EUR",
    ),
    (
        "fashion",
        "Silk scarf",
        "Hand-rolled silk scarf with a botanical print.",
        5900,
        "EUR",
    ),
    (
        "fashion",
        "Wool beanie",
        "Ribbed beanie knitted from recycled wool.",
        2500,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Trail running shoes",
        "Grippy lugged sole and a rock plate for technical trails.",
        12900,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Two-person tent",
        "Freestanding three-season tent, 1.9 kg packed.",
        24900,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Yoga mat",
        "Natural rubber mat, 4 mm thick, with an alignment grid.",
        5900,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Insulated water bottle",
        "Keeps drinks cold for 24 hours or hot for 12.",
        2900,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Headlamp",
        "Rechargeable 400 lumen headlamp with a red night mode.",
        3900,
        "EUR",
    ),
    (
        "sports-outdoors",
        "Bike repair kit",
        "Multi-tool, tyre levers, patches and a mini pump.",
        3400,
        "EUR",
    ),
    (
        "toys-games",
        "Wooden chess set",
        "Hand-carved pieces and a folding walnut board.",
        6900,
        "EUR",
    ),
    (
        "toys-games",
        "1000-piece jigsaw puzzle",
        "A mountain village at dusk, printed on thick recycled board.",
        1999,
        "EUR",
    ),
    (
        "toys-games",
        "Building blocks set",
        "250 wooden blocks in natural colours for small architects.",
        4900,
        "EUR",
    ),
    (
        "toys-games",
        "Card game night pack",
        "Three quick card games for two to six players.",
        2499,
        "EUR",
    ),
    (
        "toys-games",
        "Kite",
        "Easy-flying delta kite with a 30 metre line.",
        2900,
        "EUR",
    ),
    (
        "toys-games",
        "Plush fox",
        "Soft plush fox, 35 cm, safe from birth.",
        2200,
        "EUR",
    ),
    (
        "beauty-health",
        "Natural soap trio",
        "Cold-process soaps with olive oil: lavender, mint and oat.",
        1500,
        "EUR",
    ),
    (
        "beauty-health",
        "Bamboo toothbrush set",
        "Four toothbrushes with plant-based bristles.",
        999,
        "EUR",
    ),
    (
        "beauty-health",
        "Face moisturiser",
        "Light daily cream with hyaluronic acid, fragrance-free.",
        2400,
        "EUR",
    ),
    (
        "beauty-health",
        "Massage oil",
        "Sweet almond oil with a hint of eucalyptus.",
        1900,
        "EUR",
    ),
    (
        "beauty-health",
        "Electric toothbrush",
        "Sonic toothbrush with two brush heads and a travel case.",
        5900,
        "EUR",
    ),
    (
        "beauty-health",
        "Sleep mask",
        "Contoured silk mask that blocks every bit of light.",
        1800,
        "EUR",
    ),
    (
        "garden-diy",
        "Cordless drill",
        "18 V drill driver with two batteries and a case.",
        12900,
        "EUR",
    ),
    (
        "garden-diy",
        "Pruning shears",
        "Bypass secateurs with a non-stick blade for clean cuts.",
        2900,
        "EUR",
    ),
    (
        "garden-diy",
        "Herb seed collection",
        "Basil, thyme, parsley, chives and coriander seeds.",
        1200,
        "EUR",
    ),
    (
        "garden-diy",
        "Watering can",
        "Galvanised steel can, 9 litres, with a brass rose.",
        4500,
        "EUR",
    ),
    (
        "garden-diy",
        "Tool belt",
        "Heavy canvas tool belt with eleven pockets.",
        3900,
        "EUR",
    ),
    (
        "garden-diy",
        "Raised garden bed",
        "Untreated larch bed, 120 by 60 cm, easy to assemble.",
        8900,
        "EUR",
    ),
];

/// What a seeding run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Products created now (ones already there are not counted).
    pub created: usize,
    /// Products the demo sellers have in all.
    pub total: usize,
}

/// Seeds the fleet behind `base` once per data directory, reporting through
/// `say`; never fails: problems are reported, and the marker is left only
/// after a complete run.
pub async fn run(base: String, data_dir: PathBuf, say: impl Fn(&str)) {
    let marker = data_dir.join(MARKER);
    if marker.exists() {
        return;
    }
    say("seeding the demo catalog (skip it with --no-seed)");
    match seed(&base).await {
        Ok(done) => {
            if let Err(e) = write_marker(&marker) {
                say(&format!("warning: demo catalog seeded, but {e:#}"));
            }
            say(&format!(
                "demo catalog seeded: {} products created, {} in all, from {} demo sellers",
                done.created,
                done.total,
                SELLERS.len()
            ));
        }
        Err(e) => say(&format!(
            "warning: cannot seed the demo catalog ({e:#}); the fleet runs on, and the next start tries again"
        )),
    }
}

fn write_marker(marker: &Path) -> anyhow::Result<()> {
    std::fs::write(
        marker,
        "the demo catalog was seeded; delete this file to seed again\n",
    )
    .with_context(|| format!("cannot write {}", marker.display()))
}

/// Registers (or signs in) the demo sellers and creates the products each
/// does not have yet.
pub async fn seed(base: &str) -> anyhow::Result<Seeded> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .context("cannot build an HTTP client")?,
        base: base.trim_end_matches('/').to_owned(),
    };
    let mut done = Seeded {
        created: 0,
        total: 0,
    };
    for (n, (email, name)) in SELLERS.iter().enumerate() {
        let (seller_id, token) = client
            .seller(email, name)
            .await
            .with_context(|| format!("demo seller {email}"))?;
        let existing = client.titles_of(&seller_id).await?;
        let mine = PRODUCTS
            .iter()
            .enumerate()
            .filter(|(i, _)| i % SELLERS.len() == n);
        for (i, item) in mine {
            done.total += 1;
            if existing.iter().any(|t| t == item.1) {
                continue;
            }
            client.create(&token, i, item).await?;
            done.created += 1;
        }
    }
    Ok(done)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Sends what `build` makes, pausing first; a 429 or 503 is retried a
    /// few times after a longer pause.
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(u16, Value)> {
        let mut attempt = 0;
        loop {
            tokio::time::sleep(PACE).await;
            let response = build(&self.http)
                .send()
                .await
                .with_context(|| format!("{what}: no answer"))?;
            let status = response.status().as_u16();
            if matches!(status, 429 | 502 | 503) && attempt < 5 {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let value = serde_json::from_str(&body).unwrap_or(Value::Null);
            return Ok((status, value));
        }
    }

    /// The seller's id and an access token: registers the account, or
    /// signs in when it exists already.
    async fn seller(&self, email: &str, name: &str) -> anyhow::Result<(String, String)> {
        let url = format!("{}/api/v1/auth/register", self.base);
        let body = json!({"email": email, "password": PASSWORD, "name": name, "role": "seller"});
        let (status, _) = self.send("register", |c| c.post(&url).json(&body)).await?;
        if status != 201 && status != 409 {
            bail!("registering answered {status}");
        }
        let url = format!("{}/api/v1/auth/login", self.base);
        let body = json!({"email": email, "password": PASSWORD});
        let (status, tokens) = self.send("login", |c| c.post(&url).json(&body)).await?;
        if status != 200 {
            bail!("signing in answered {status} (was the account made with another password?)");
        }
        let token = tokens["access_token"]
            .as_str()
            .context("no access token in the login answer")?
            .to_owned();
        let url = format!("{}/api/v1/users/me", self.base);
        let (status, me) = self.send("me", |c| c.get(&url).bearer_auth(&token)).await?;
        if status != 200 {
            bail!("GET /api/v1/users/me answered {status}");
        }
        if me["role"] != "seller" {
            bail!("the account exists but is not a seller");
        }
        let id = me["id"]
            .as_str()
            .context("no id for the seller")?
            .to_owned();
        Ok((id, token))
    }

    /// Titles of the seller's products on sale.
    async fn titles_of(&self, seller_id: &str) -> anyhow::Result<Vec<String>> {
        let url = format!(
            "{}/api/v1/products?seller_id={seller_id}&limit=100",
            self.base
        );
        let (status, page) = self.send("list", |c| c.get(&url)).await?;
        if status != 200 {
            bail!("listing the seller's products answered {status}");
        }
        Ok(page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|p| p["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Puts one demo product on sale.
    async fn create(&self, token: &str, index: usize, item: &Item) -> anyhow::Result<()> {
        let (category, title, description, amount, currency) = *item;
        // Varied, but the same on every run.
        let stock = (index * 7 % 40) + 3;
        let body = json!({
            "title": title,
            "description": description,
            "price": {"amount": amount, "currency": currency},
            "category": category,
            "initial_stock": stock,
        });
        let url = format!("{}/api/v1/products", self.base);
        let (status, answer) = self
            .send("create", |c| c.post(&url).bearer_auth(token).json(&body))
            .await?;
        if status != 201 {
            bail!("creating {title:?} answered {status}: {answer}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_varied_and_valid() {
        assert!(PRODUCTS.len() >= 40);
        let mut categories: Vec<&str> = PRODUCTS.iter().map(|p| p.0).collect();
        categories.sort_unstable();
        categories.dedup();
        assert!(categories.len() >= 6);
        let mut titles: Vec<&str> = PRODUCTS.iter().map(|p| p.1).collect();
        titles.sort_unstable();
        titles.dedup();
        assert_eq!(titles.len(), PRODUCTS.len(), "titles are unique per run");
        for (category, title, description, amount, currency) in PRODUCTS {
            assert!(*amount > 0, "{title}");
            assert!(
                bazaar_catalog::domain::Currency::parse(currency).is_ok(),
                "{title}"
            );
            assert!(bazaar_catalog::domain::Title::parse(title).is_ok());
            assert!(bazaar_catalog::domain::Description::parse(description).is_ok());
            assert!(!category.is_empty());
        }
    }
}
