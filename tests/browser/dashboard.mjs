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

  // A deployment on the simulated fleet, from the form to done, watched
  // live: preview, create, start; the creator's own approval is refused
  // (four eyes); a second user approves; an auditor sees no button and
  // every action URL posted directly answers 403; a post without a CSRF
  // token is refused. PB_SIM_* come from the Rust test (the API is its
  // oracle for what should happen).
  if (process.env.PB_SIM_PACKAGE) {
    const flow = { console: [] };
    page.on('console', (m) => {
      if ((m.type() === 'error' || m.type() === 'warning') && !/status of 40[39]/.test(m.text())) flow.console.push(m.text());
    });
    await page.goto(`${base}/ui/deployments`);
    await Promise.all([page.waitForNavigation(), page.click('a:text("New deployment")')]);
    flow.formPath = new URL(page.url()).pathname;
    await page.fill('#new-packages', `${process.env.PB_SIM_PACKAGE}=${process.env.PB_SIM_VERSION}`);
    await page.fill('#new-assets', process.env.PB_SIM_TARGETS);
    await page.fill('#new-canary', process.env.PB_SIM_CANARY);
    await page.check('#new-approval');
    await page.fill('#new-max_concurrent', '100%');
    await Promise.all([page.waitForNavigation(), page.click('#new button[type=submit]')]);
    flow.previewTitle = await page.title();
    flow.previewHosts = await page.$$eval('main table:first-of-type tbody tr', (rows) => rows.map((r) => r.cells[1].textContent));
    if (shots) await page.screenshot({ path: `${shots}/deployment_preview.png`, fullPage: true });
    await Promise.all([page.waitForNavigation(), page.click('#create button[type=submit]')]);
    const boardPath = new URL(page.url()).pathname;
    flow.boardPath = boardPath;
    flow.created = await page.textContent('[data-status]');
    // The overview, open in another tab, lists new events as they happen.
    const overview = await context.newPage();
    await overview.goto(`${base}/ui/`);
    await overview.evaluate(() => { window.__notReloaded = true; });
    await overview.waitForFunction(() => document.getElementById('events-state').textContent === 'live: connected',
      null, { timeout: 10000 });
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/action"] button:text("start")')]);
    await page.evaluate(() => { window.__notReloaded = true; });
    const tStarted = Date.now();
    await overview.waitForFunction(() => [...document.querySelectorAll('#events li')]
      .some((li) => li.textContent.includes('deployment.started')), null, { timeout: 10000 });
    flow.overviewLive = { msToShow: Date.now() - tStarted,
      notReloaded: await overview.evaluate(() => window.__notReloaded === true),
      first: await overview.textContent('#events li') };
    await overview.close();
    // Watch the canary ring's counters change in place.
    await page.waitForFunction(() => document.getElementById('live-state').textContent !== 'live updates: connecting…',
      null, { timeout: 10000 });
    const t0 = Date.now();
    await page.waitForFunction(() => {
      const n = document.querySelector('[data-ring="canary"] [data-count="succeeded"]');
      return n && n.textContent === '1';
    }, null, { timeout: 60000 });
    flow.canaryMs = Date.now() - t0;
    await page.waitForFunction(() => document.querySelector('form[action$="/approval"]'), null, { timeout: 60000 });
    flow.canaryNotReloaded = await page.evaluate(() => window.__notReloaded === true);
    flow.awaiting = await page.textContent('[data-ring="rest"] [data-ring-state]');
    if (shots) await page.screenshot({ path: `${shots}/deployment_awaiting_approval.png`, fullPage: true });
    // The creator approves its own deployment: refused.
    await page.fill('form[action$="/approval"] input[name=comment]', 'looks good to me');
    const [own] = await Promise.all([page.waitForNavigation(), page.click('form[action$="/approval"] button[value=true]')]);
    flow.ownApprovalStatus = own.status();
    flow.ownApprovalText = await page.textContent('main');
    // A post without a CSRF token: refused, nothing changes.
    flow.noCsrfStatus = await page.evaluate(async (path) => (await fetch(`${path}/action`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'action=abort&comment=x',
    })).status, boardPath);

    // A second person approves, in a browser of their own.
    const abeContext = await browser.newContext();
    const abe = await abeContext.newPage();
    abe.on('console', (m) => { if (m.type() === 'error' && !/status of 40[39]/.test(m.text())) flow.console.push(`abe: ${m.text()}`); });
    await abe.goto(`${base}/ui/login`);
    await abe.fill('#name', process.env.PB_APPROVER);
    await abe.fill('#password', process.env.PB_APPROVER_PASSWORD);
    await Promise.all([abe.waitForNavigation(), abe.press('#password', 'Enter')]);
    await abe.goto(`${base}${boardPath}`);
    await abe.evaluate(() => { window.__notReloaded = true; });
    await abe.fill('form[action$="/approval"] input[name=comment]', 'canary clean, approved');
    const tApprove = Date.now();
    const [approved] = await Promise.all([abe.waitForNavigation(), abe.click('form[action$="/approval"] button[value=true]')]);
    flow.approvalMs = Date.now() - tApprove;
    flow.approvalStatus = approved.status();
    flow.afterApproval = await abe.evaluate(() => [...document.querySelectorAll('[data-ring="rest"] [data-count]')]
      .map((c) => `${c.dataset.count}=${c.textContent}`).join(' '));
    await abe.evaluate(() => { window.__notReloaded = true; });
    const t1 = Date.now();
    await abe.waitForFunction(() => document.querySelector('[data-status]').textContent === 'completed',
      null, { timeout: 90000 });
    flow.restMs = Date.now() - t1;
    flow.restNotReloaded = await abe.evaluate(() => window.__notReloaded === true);
    flow.final = await abe.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-ring]')].map((r) => [
      r.dataset.ring, Object.fromEntries([...r.querySelectorAll('[data-count]')].map((c) => [c.dataset.count, Number(c.textContent)]))])));
    flow.approvedBy = await abe.textContent('[data-ring="rest"] p');
    if (shots) await abe.screenshot({ path: `${shots}/deployment_completed.png`, fullPage: true });
    await abeContext.close();

    // An auditor: the board without a button, and 403 for every action posted directly.
    const audContext = await browser.newContext();
    const aud = await audContext.newPage();
    await aud.goto(`${base}/ui/login`);
    await aud.fill('#name', process.env.PB_AUDITOR);
    await aud.fill('#password', process.env.PB_AUDITOR_PASSWORD);
    await Promise.all([aud.waitForNavigation(), aud.press('#password', 'Enter')]);
    await aud.goto(`${base}${boardPath}`);
    flow.auditor = {
      buttons: await aud.$$eval('main form button', (b) => b.length),
      newLink: (await aud.goto(`${base}/ui/deployments`), await aud.$('a[href="/ui/deployments/new"]')) !== null,
      exceptionForms: (await aud.goto(`${base}/ui/exceptions`), await aud.$$eval('main form', (f) => f.length)),
    };
    flow.auditor.posts = await aud.evaluate(async (path) => {
      const csrf = document.querySelector('form.signout input[name=csrf]').value;
      const post = async (url, fields) => (await fetch(url, { method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, ...fields }).toString() })).status;
      const out = {};
      for (const a of ['start', 'pause', 'resume', 'abort', 'rollback']) out[`action:${a}`] = await post(`${path}/action`, { action: a, comment: 'x' });
      out.approval = await post(`${path}/approval`, { approve: 'true', comment: 'x' });
      out.create = await post('/ui/deployments/create', { packages: 'x=1' });
      out.preview = await post('/ui/deployments/preview', { packages: 'x=1' });
      out.exception = await post('/ui/exceptions', { advisory: 'CVE-2026-1', owner: 'o', reason: 'r', compensating_control: 'c', expires: '1d' });
      out.revoke = await post('/ui/exceptions/revoke', { id: 'EXC-1', reason: 'r' });
      return out;
    }, boardPath);
    await audContext.close();

    // Download a report from the reports page.
    await page.goto(`${base}/ui/reports`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('a[href="/ui/reports/compliance?format=csv"]'),
    ]);
    flow.download = { name: download.suggestedFilename() };
    const chunks = [];
    for await (const c of await download.createReadStream()) chunks.push(c);
    flow.download.text = Buffer.concat(chunks).toString('utf8');
    out.flow = flow;
  }

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
