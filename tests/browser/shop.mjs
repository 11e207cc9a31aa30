// The shop's journeys, as people use it: register, browse, search, add to
// cart, check out (approved: the order turns confirmed without a reload;
// declined: the reason shows), the bell counting up live, a seller putting
// a product on sale that search then finds, and the product page at phone
// width.

const PASSWORD = "correct-horse-42";
const LIVE_WAIT = 30_000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function unique() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Logs a step. */
function step(text) {
  console.log(`  - ${text}`);
}

/** Waits until the seeded catalog answers with products. */
async function seeded(baseUrl) {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`${baseUrl}/api/v1/products?limit=50`);
      if (r.ok) {
        const page = await r.json();
        if (page.items && page.items.length > 0) return page.items;
      }
    } catch (_) {
      // not up yet
    }
    if (Date.now() > until) throw new Error("the seeded catalog has no products after 60 s");
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

/** A stock figure for a product, from the public API. */
async function available(baseUrl, id) {
  const r = await fetch(`${baseUrl}/api/v1/inventory/${id}`);
  return r.ok ? (await r.json()).available : 0;
}

async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = [];
  // The CSP must not refuse anything of ours.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused/.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`script error: ${e.message}`));
  return { context, page, problems };
}

async function register(page, baseUrl, screenshot, { email, name, role }) {
  await page.goto(`${baseUrl}/register`);
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.locator(`input[name=role][value=${role}]`).check();
  await screenshot(page, `register-${role}`);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/register")), page.getByRole("button", { name: "Create account" }).click()]);
  check((await page.locator("header").textContent()).includes(name), `the header does not greet ${name}`);
}

async function bellCount(page) {
  return parseInt((await page.locator("[data-unread]").textContent()).trim(), 10) || 0;
}

async function addToCart(page, baseUrl, productId, quantity = 1) {
  await page.goto(`${baseUrl}/products/${productId}`);
  await page.getByLabel("Quantity").fill(String(quantity));
  await Promise.all([page.waitForURL(/\/cart$/), page.getByRole("button", { name: "Add to cart" }).click()]);
}

async function fillCheckout(page, card) {
  await page.getByLabel("Full name").fill("Ada Shopper");
  await page.getByLabel("Address").fill("1 Market Street");
  await page.getByLabel("City").fill("Berlin");
  await page.getByLabel("Postal code").fill("10115");
  await page.getByLabel("Country").fill("DE");
  await page.getByLabel("Card number").fill(card);
  await page.getByLabel("Expiry month").fill("12");
  await page.getByLabel("Expiry year").fill(String(new Date().getFullYear() + 3));
  await page.getByLabel("Security code (CVC)").fill("123");
}

/** Submits the checkout form; the answer's status. */
async function placeOrder(page) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/checkout") && r.request().method() === "POST"),
    page.getByRole("button", { name: "Place order" }).click(),
  ]);
  await page.waitForLoadState("domcontentloaded");
  return response.status();
}

export async function run({ browser, baseUrl, screenshot }) {
  const products = await seeded(baseUrl);
  // A product with plenty of stock, so two orders and another test can buy.
  let product = null;
  for (const p of products) {
    if ((await available(baseUrl, p.id)) >= 5) {
      product = p;
      break;
    }
  }
  check(product, "no seeded product has 5 units in stock");
  const word = product.title.split(/\s+/).find((w) => /^[A-Za-z]{4,}$/.test(w)) || product.title.split(/\s+/)[0];

  const { context, page, problems } = await newPage(browser);
  const shopper = { email: `shopper-${unique()}@example.com`, name: "Ada Shopper", role: "customer" };

  step("register as a customer");
  await register(page, baseUrl, screenshot, shopper);
  check(new URL(page.url()).pathname === "/", `after registering: ${page.url()}`);
  await page.locator("h2", { hasText: "Featured products" }).waitFor();
  check((await page.locator(".grid .card").count()) > 0, "the home page features no products");
  await screenshot(page, "home");

  step("browse a category");
  await page.locator("ul.categories a").first().click();
  await page.waitForURL(/\/products\?category=/);
  check((await page.locator(".grid .card").count()) > 0, "a category with products lists none");
  await screenshot(page, "category");

  step(`search for "${word}"`);
  await page.locator("#site-search").fill(word);
  await Promise.all([page.waitForURL(/\/products\?q=/), page.locator("form.search button").click()]);
  check(
    (await page.locator(".grid .card h3").allTextContents()).some((t) => t.includes(product.title)),
    `searching "${word}" does not find "${product.title}"`,
  );
  await screenshot(page, "search");

  step("a search that finds nothing says so");
  await page.goto(`${baseUrl}/products?q=zzqqxxnothing`);
  check((await page.locator(".notice.empty").count()) === 1, "no empty state");
  await screenshot(page, "search-empty");

  step("open the product and add it to the cart");
  await page.goto(`${baseUrl}/products?q=${encodeURIComponent(word)}`);
  await page.getByRole("link", { name: product.title }).first().click();
  await page.waitForURL(/\/products\/[0-9a-f-]{36}$/);
  check((await page.locator("h1").textContent()).includes(product.title), "the product page's title");
  check(/In stock|Only \d+ left/.test(await page.locator(".stock").textContent()), "no stock state");
  await screenshot(page, "product");
  await page.getByLabel("Quantity").fill("1");
  await Promise.all([page.waitForURL(/\/cart$/), page.getByRole("button", { name: "Add to cart" }).click()]);
  check((await page.locator("table.cart").textContent()).includes(product.title), "the cart lacks the product");
  await screenshot(page, "cart");

  step("the product page at phone width (375 px)");
  {
    const phone = await newPage(browser, { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
    await phone.page.goto(`${baseUrl}/products/${product.id}`);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the product page scrolls sideways at 375 px (${overflow} px)`);
    await screenshot(phone.page, "product-phone");
    await phone.context.close();
  }

  step("another tab watches the bell");
  const watcher = await context.newPage();
  watcher.setDefaultTimeout(15_000);
  await watcher.goto(`${baseUrl}/notifications`);
  const before = await bellCount(watcher);

  step("check out with 4242 4242 4242 4242");
  await page.getByRole("link", { name: "Checkout" }).click();
  await page.waitForURL(/\/checkout$/);
  check((await page.locator("#test-cards").textContent()).includes("4242424242424242"), "test cards are not shown");
  await fillCheckout(page, "4242424242424242");
  await screenshot(page, "checkout");
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  const status = await placeOrder(page);
  check(status === 303 || status === 302, `placing the order answered ${status}, not a redirect to it`);
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  const orderUrl = page.url();
  const arrived = navigations;
  await screenshot(page, "order-placed");
  await page.locator("[data-order-status]", { hasText: "Confirmed" }).waitFor({ timeout: LIVE_WAIT });
  check(navigations === arrived, `the order page reloaded (${navigations - arrived} navigations) to show the confirmation`);
  check(page.url() === orderUrl, "the order page navigated away");
  await screenshot(page, "order-confirmed");

  step("the bell in the other tab counts the confirmation live");
  await watcher.waitForFunction(
    (n) => (parseInt(document.querySelector("[data-unread]").textContent, 10) || 0) > n,
    before,
    { timeout: LIVE_WAIT },
  );
  await watcher.bringToFront();
  await screenshot(watcher, "bell-live");
  check(watcher.url().endsWith("/notifications"), "the watching tab navigated");

  step("a card number the orders service refuses comes back next to the field, not echoed");
  await addToCart(page, baseUrl, product.id);
  await page.goto(`${baseUrl}/checkout`);
  await fillCheckout(page, "4242");
  const refused = await placeOrder(page);
  check(refused === 422, `an invalid card answered ${refused}, not 422`);
  const cardError = page.locator("#card_number-error");
  await cardError.waitFor();
  check((await page.getByLabel("Card number").inputValue()) === "", "the card number was echoed back");
  check(
    (await page.getByLabel("Card number").getAttribute("aria-describedby")).includes("card_number-error"),
    "the card's message is not linked to the field",
  );
  await screenshot(page, "checkout-invalid");

  step("check out with the declined card 4000 0000 0000 0002");
  await fillCheckout(page, "4000000000000002");
  const declinedStatus = await placeOrder(page);
  check(declinedStatus === 303 || declinedStatus === 302, `placing the declined order answered ${declinedStatus}`);
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  await page.locator("[data-order-status]", { hasText: "Cancelled" }).waitFor({ timeout: LIVE_WAIT });
  const reason = (await page.locator("[data-cancel-reason]").textContent()).trim();
  check(/declin/i.test(reason), `the cancel reason does not say declined: "${reason}"`);
  await screenshot(page, "order-declined");

  step("order history and notifications");
  await page.goto(`${baseUrl}/orders`);
  check((await page.locator("table.orders tbody tr").count()) >= 2, "the history lacks the two orders");
  await screenshot(page, "orders");
  await page.goto(`${baseUrl}/notifications`);
  const unread = await bellCount(page);
  check(unread >= 1, "no unread notifications");
  await page.locator(".note.unread button", { hasText: "Mark read" }).first().click();
  await page.waitForURL(/\/notifications$/);
  // The bell and the feed come from the same answer of notifications.
  const listed = await page.locator(".note.unread").count();
  check((await bellCount(page)) === listed, `the bell says ${await bellCount(page)}, the feed lists ${listed} unread`);
  check(listed < unread || unread > 20, "marking one read did not lower the count");
  await screenshot(page, "notifications");

  check(problems.length === 0, `the browser complained:\n${problems.join("\n")}`);
  await context.close();

  step("a seller registers and puts a product on sale");
  const seller = await newPage(browser);
  const title = `Journey lamp ${unique()}`;
  await register(seller.page, baseUrl, screenshot, {
    email: `seller-${unique()}@example.com`,
    name: "Sam Seller",
    role: "seller",
  });
  await seller.page.goto(`${baseUrl}/sell`);
  await screenshot(seller.page, "sell-empty");
  await seller.page.getByRole("link", { name: "Add a product" }).click();
  await seller.page.waitForURL(/\/sell\/new$/);
  await seller.page.getByLabel("Title").fill(title);
  await seller.page.getByLabel("Description").fill("A brass lamp made for the browser journeys.");
  await seller.page.getByLabel("Price").fill("12,5x");
  await seller.page.getByLabel("Currency").selectOption("EUR");
  await seller.page.getByLabel("Category").selectOption({ index: 1 });
  await seller.page.getByLabel("Initial stock").fill("7");
  await seller.page.getByRole("button", { name: "Put on sale" }).click();
  await seller.page.locator("#price-error").waitFor();
  await screenshot(seller.page, "sell-invalid-price");
  await seller.page.getByLabel("Price").fill("12.50");
  await Promise.all([
    seller.page.waitForURL(/\/sell\/products\/[0-9a-f-]{36}\?created=1$/),
    seller.page.getByRole("button", { name: "Put on sale" }).click(),
  ]);
  await screenshot(seller.page, "sell-created");
  await seller.page.goto(`${baseUrl}/sell`);
  check((await seller.page.locator("table.products").textContent()).includes(title), "the seller's list lacks the product");
  await screenshot(seller.page, "sell");

  step("search finds the new product");
  await seller.page.locator("#site-search").fill(title);
  await Promise.all([seller.page.waitForURL(/\/products\?q=/), seller.page.locator("form.search button").click()]);
  const found = await seller.page.locator(".grid .card h3").allTextContents();
  check(found.some((t) => t.includes(title)), `searching "${title}" finds ${JSON.stringify(found)}`);
  check(found.length >= 1, "no results");
  await seller.page.getByRole("link", { name: title }).click();
  check((await seller.page.locator(".price").first().textContent()).includes("12.50 EUR"), "the price is not 12.50 EUR");
  await screenshot(seller.page, "new-product");
  check(seller.problems.length === 0, `the browser complained:\n${seller.problems.join("\n")}`);
  await seller.context.close();

  step("a missing product is the 404 page");
  {
    const anon = await newPage(browser);
    const response = await anon.page.goto(`${baseUrl}/products/00000000-0000-4000-8000-000000000000`);
    check(response.status() === 404, `a missing product answered ${response.status()}`);
    await screenshot(anon.page, "not-found");
    await anon.context.close();
  }
}
