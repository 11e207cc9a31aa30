// The ops console in a real browser: an admin signs in and lands on /ops,
// the fleet table lists the core services healthy, the console refreshes
// itself without a reload; an anonymous visitor is sent to sign in.

/** Services the fleet table must list, each with a healthy instance. */
const CORE = ['gateway', 'identity', 'catalog', 'orders', 'storefront'];

/** How long the live refresh (every 2.5 s) may take to show. */
const REFRESH_PATIENCE = 15_000;

function check(condition, message) {
  if (!condition) throw new Error(`ops console: ${message}`);
}

export async function run({ browser, baseUrl, screenshot, admin }) {
  if (!admin || !admin.email || !admin.password) {
    throw new Error(
      'ops console: the admin credentials are missing; pass { admin: { email, password } } ' +
        '(bazaar up writes the password to <data dir>/admin-password, the e-mail is admin@bazaar.local)',
    );
  }
  await asAdmin({ browser, baseUrl, screenshot, admin });
  await anonymous({ browser, baseUrl });
}

async function asAdmin({ browser, baseUrl, screenshot, admin }) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${baseUrl}/login?next=/ops`);
    await page.getByLabel(/e-?mail/i).fill(admin.email);
    const password = page.getByLabel(/password/i);
    await password.fill(admin.password);
    // Enter submits the sign-in form itself, whatever its button says.
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/ops', { timeout: 15_000 }),
      password.press('Enter'),
    ]);
    check(new URL(page.url()).pathname === '/ops', `signed in but landed on ${page.url()}`);
    await page.getByRole('heading', { level: 1, name: /ops console/i }).waitFor();

    // The fleet table, found by its caption.
    const fleet = page.getByRole('table', { name: /services and their instances/i });
    await fleet.waitFor();
    for (const service of CORE) {
      const rows = fleet.locator(`tbody tr[data-service="${service}"]`);
      const count = await rows.count();
      check(count > 0, `the fleet table does not list ${service}`);
      for (let i = 0; i < count; i += 1) {
        const state = await rows.nth(i).getAttribute('data-healthy');
        check(state === 'healthy', `${service} instance ${i} is ${state}`);
        const text = await rows.nth(i).innerText();
        check(/\bhealthy\b/.test(text), `${service} row does not say healthy: ${text}`);
      }
    }
    for (const caption of [/services and their instances/i]) {
      const headers = await page
        .getByRole('table', { name: caption })
        .locator('thead th[scope="col"]')
        .count();
      check(headers >= 8, `the fleet table has ${headers} column headers`);
    }
    await page.getByRole('heading', { level: 2, name: /consumer lag/i }).waitFor();
    await page.getByRole('heading', { level: 2, name: /recent orders/i }).waitFor();

    // The live part is swapped in place: no navigation, a newer timestamp.
    const before = await page.locator('#ops-live').getAttribute('data-refreshed');
    check(before, 'the console has no data-refreshed timestamp');
    await page.evaluate(() => {
      window.opsNotReloaded = true;
    });
    await page.waitForFunction(
      (previous) => {
        const live = document.getElementById('ops-live');
        return live && live.dataset.refreshed && live.dataset.refreshed !== previous;
      },
      before,
      { timeout: REFRESH_PATIENCE },
    );
    const after = await page.locator('#ops-live').getAttribute('data-refreshed');
    check(Number(after) > Number(before), `refreshed ${before} → ${after}`);
    check(
      await page.evaluate(() => window.opsNotReloaded === true),
      'the page reloaded instead of refreshing in place',
    );
    check(
      (await fleet.locator('tbody tr[data-service="gateway"]').count()) > 0,
      'the refreshed fleet table lost the gateway',
    );
    await screenshot(page, 'ops-console');
  } finally {
    await context.close();
  }
}

async function anonymous({ browser, baseUrl }) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${baseUrl}/ops`);
    check(page.url().includes('/login'), `an anonymous visit of /ops ended on ${page.url()}`);
    const response = await page.request.get(`${baseUrl}/ops/fleet`, { maxRedirects: 0 });
    check(
      response.status() >= 300 && response.status() < 400 &&
        (response.headers().location || '').includes('/login'),
      `an anonymous GET /ops/fleet answered ${response.status()}`,
    );
  } finally {
    await context.close();
  }
}
