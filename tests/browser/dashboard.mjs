// Drives the Patchbay dashboard in a real browser (Debian's chromium through
// playwright-core) and prints what it saw as one JSON object on stdout; the
// Rust test `dashboard_browser` (crates/patchbay-cli/tests/it) judges it
// against the API. Failing to drive the browser at all exits non-zero.
//
//   PB_URL=http://127.0.0.1:PORT PB_USER=dev PB_PASSWORD=… node dashboard.mjs
//
// What it does, as a person would: opens /ui/ (sent to the sign-in page),
// signs in with the keyboard only, reads the overview's cards, visits every
// page (axe-core accessibility check on each, console errors and CSP
// violations collected), tries wall-screen mode, tampers with a form's CSRF
// token, and signs out.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const base = process.env.PB_URL;
const user = process.env.PB_USER;
const password = process.env.PB_PASSWORD;
if (!base || !user || !password) {
  console.error('PB_URL, PB_USER and PB_PASSWORD are required');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.PB_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const out = { pages: {}, console: [], cards: {} };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') out.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));

  // Signed out: sent to the sign-in page.
  await page.goto(`${base}/ui/`);
  out.redirectedTo = new URL(page.url()).pathname;
  out.loginTitle = await page.title();

  // Keyboard only: the name field has focus, Tab to the password, Enter.
  out.focusedAtStart = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  out.focusedAfterTab = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.keyboard.type(password);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  out.afterLogin = new URL(page.url()).pathname;

  // The session cookie as the browser holds it.
  const cookies = await context.cookies();
  const c = cookies.find((k) => k.name === 'pb_session');
  out.cookie = c ? { httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite } : null;
  out.cookieVisibleToScript = await page.evaluate(() => document.cookie.includes('pb_session'));

  // The overview's cards and the ages under them.
  out.cards = await page.$$eval('[data-bucket]', (els) =>
    Object.fromEntries(els.map((e) => [e.dataset.bucket, {
      count: Number(e.querySelector('.num').textContent),
      age: e.querySelector('.age').textContent,
    }])));
  out.overviewText = await page.textContent('main');
  out.overviewHasSvg = (await page.$('main svg')) !== null;

  // The first Tab from the top lands on the skip link.
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.keyboard.press('Tab');
  out.firstTab = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());

  // Every page: loads, no console error, axe-core finds nothing.
  const axeContext = await browser.newContext({ bypassCSP: true });
  await axeContext.addCookies(cookies);
  const axePage = await axeContext.newPage();
  const shots = process.env.PB_ARTIFACTS;
  const checkedLinks = new Set();
  for (const path of ['/ui/', '/ui/assets', '/ui/worklist', '/ui/deployments', '/ui/triage?cve=CVE-2023-4911', '/ui/catalog', '/ui/calendar',
    '/ui/exceptions', '/ui/reports', '/ui/changes', '/ui/feeds', '/ui/lessons', '/ui/audit', '/ui/sessions', '/ui/?wall=1']) {
    const r = await page.goto(`${base}${path}`);
    const entry = { status: r.status(), title: await page.title() };
    if (shots) {
      const file = path.replace(/[^a-z0-9]+/gi, '_').replace(/^_|_$/g, '') || 'overview';
      await page.screenshot({ path: `${shots}/${file}.png`, fullPage: true });
    }
    // Every link on the page answers (no broken link), this server's only.
    entry.brokenLinks = [];
    for (const href of await page.$$eval('a[href]', (as) => as.map((a) => a.href))) {
      const u = new URL(href);
      if (u.origin !== new URL(base).origin || u.hash || checkedLinks.has(href)) continue;
      checkedLinks.add(href);
      const resp = await page.request.get(href, { maxRedirects: 0 });
      if (resp.status() >= 400) entry.brokenLinks.push(`${href}: ${resp.status()}`);
    }
    await axePage.goto(`${base}${path}`);
    await axePage.addScriptTag({ content: axeSource });
    const result = await axePage.evaluate(async () =>
      // eslint-disable-next-line no-undef
      await axe.run(document, { resultTypes: ['violations'] }));
    entry.axe = result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
      target: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
    out.pages[path] = entry;
  }
  // A value of someone else's making with markup renders as text.
  await page.goto(`${base}/ui/assets`);
  out.linksChecked = checkedLinks.size;
  out.xss = await page.evaluate(() => ({ ran: window.__xss !== undefined,
    shown: document.querySelector('main').textContent.includes('<script>window.__xss=1</script>') }));
  // An asset's page, from the assets list's first link.
  await page.goto(`${base}/ui/assets`);
  const link = await page.$(`main table a[href="/ui/assets/${encodeURIComponent(process.env.PB_ASSET || '')}"]`)
    || await page.$('main table a');
  if (link) {
    await Promise.all([page.waitForNavigation(), link.click()]);
    out.assetPage = { path: new URL(page.url()).pathname, title: await page.title(),
      packagesHeading: await page.textContent('main h2:nth-of-type(3)') };
  }

  // Wall-screen mode: dark, large, refreshing.
  await page.goto(`${base}/ui/?wall=1`);
  out.wall = await page.evaluate(() => ({
    background: getComputedStyle(document.body).backgroundColor,
    fontSize: getComputedStyle(document.body).fontSize,
    state: document.getElementById('refresh-state').textContent,
  }));
  // The refresh happens (the page's "As of" changes) and can be paused.
  const asOf = await page.textContent('.asof');
  await page.waitForFunction((before) => document.querySelector('.asof')
    && document.querySelector('.asof').textContent !== before, asOf, { timeout: 40000 });
  out.wall.reloaded = true;
  await page.click('#refresh-toggle');
  out.wall.paused = await page.textContent('#refresh-state');

  // The live rollout board: an operator elsewhere pauses the deployment
  // through the API; the open page shows it without being reloaded.
  if (process.env.PB_DEPLOYMENT) {
    const dep = process.env.PB_DEPLOYMENT;
    await page.goto(`${base}/ui/deployments/${encodeURIComponent(dep)}`);
    await page.evaluate(() => { window.__notReloaded = true; });
    await page.waitForFunction(() => document.getElementById('live-state').textContent === 'live: connected',
      null, { timeout: 10000 });
    const board = { before: await page.textContent('[data-status]') };
    const t0 = Date.now();
    const r = await fetch(`${base}/api/v1/deployments/${encodeURIComponent(dep)}/pause`, {
      method: 'POST', headers: { authorization: `Bearer ${process.env.PB_TOKEN}`, 'content-type': 'application/json' }, body: '{}',
    });
    board.apiStatus = r.status;
    await page.waitForFunction(() => document.querySelector('[data-status]').textContent === 'paused',
      null, { timeout: 10000 });
    board.msToShow = Date.now() - t0;
    board.notReloaded = await page.evaluate(() => window.__notReloaded === true);
    board.liveState = await page.textContent('#live-state');
    board.after = await page.textContent('[data-status]');
    // Resume from the board's own form.
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/action"] button:text("resume")')]);
    board.afterResume = await page.textContent('[data-status]');
    const axeBoard = await axePage.goto(`${base}/ui/deployments/${encodeURIComponent(dep)}`);
    board.axeStatus = axeBoard.status();
    await axePage.addScriptTag({ content: axeSource });
    board.axe = (await axePage.evaluate(async () => await axe.run(document, { resultTypes: ['violations'] })))
      .violations.map((v) => ({ id: v.id, impact: v.impact, target: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
    out.board = board;
  }

  // What the console said before the test provoked errors on purpose.
  out.consoleBeforeTamper = [...out.console];
  // A form whose CSRF token was tampered with is refused.
  await page.goto(`${base}/ui/sessions`);
  out.sessionsBefore = await page.$$eval('main table tbody tr', (rows) => rows.length);
  await page.$eval('form[action="/ui/sessions/revoke"] input[name="csrf"]', (i) => { i.value = 'x'.repeat(32); });
  const [tampered] = await Promise.all([
    page.waitForNavigation(),
    page.click('form[action="/ui/sessions/revoke"] button'),
  ]);
  out.tamperedStatus = tampered.status();
  await page.goto(`${base}/ui/sessions`);
  out.sessionsAfter = await page.$$eval('main table tbody tr', (rows) => rows.length);

  // Sign out: back at the sign-in page; the dashboard is closed again.
  await Promise.all([page.waitForNavigation(), page.click('form.signout button')]);
  out.afterLogout = new URL(page.url()).pathname;
  await page.goto(`${base}/ui/`);
  out.afterLogoutVisit = new URL(page.url()).pathname;
  await axeContext.close();
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
