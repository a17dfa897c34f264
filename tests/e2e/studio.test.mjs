// Cairn Studio end to end (issue 18): Debian's chromium, headless, driven by
// playwright-core (ui/node_modules), against a real cairnd with seeded data
// (studio_server.py: 100,000 runs × 20 metrics, and 10 runs of 100,000
// steps). Opens the runs table, sorts by a metric, filters with OR (and a
// bad filter), walks the table by keyboard and opens a run, sees its chart,
// selects a range with Shift-click and compares three runs (a scatter and
// parallel coordinates), and times a chart of 10 runs × 100,000 steps; then
// moves a model's alias, changes an endpoint's traffic split (checked
// through the REST API), watches a job's log grow (and its run's), and
// queries and verifies the audit trail of a second, small cairnd
// (docs/STUDIO.md).
// Screenshots go to BUILD/e2e/screenshots/; a console error fails the test;
// so does a request for a whole history or a whole run list. Prints the
// figures (docs/STUDIO.md). Run: CAIRN_BUILD_DIR=build node tests/e2e/studio.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = process.env.CAIRN_SOURCE_DIR || path.join(here, '..', '..');
const BUILD = path.resolve(process.env.CAIRN_BUILD_DIR || path.join(SOURCE, 'build'));
const CHROMIUM = process.env.CAIRN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(BUILD, 'e2e', 'screenshots');
const figures = {};
// The budgets, printed beside the figures (not asserted: the test
// runs on loaded CI machines; docs/STUDIO.md records the measurements).
const BUDGETS = { first_rows_ms: 1000, sort_ms: 300, chart_10x100k_ms: 500 };
const report = () => {
  for (const [k, v] of Object.entries(figures))
    console.log(`studio e2e: ${k}: ${v}` + (k in BUDGETS ? ` (budget ${BUDGETS[k]} ms: ${v < BUDGETS[k] ? 'within' : 'OVER'})` : ''));
};

function need(ok, why) {
  if (!ok) {
    console.error(`studio e2e: FAILED: ${why}`);
    process.exit(1);
  }
}
need(fs.existsSync(CHROMIUM), `no ${CHROMIUM}: install Debian's chromium (tools/install-deps.sh does)`);
need(fs.existsSync(path.join(SOURCE, 'ui', 'node_modules', 'playwright-core')), 'no ui/node_modules/playwright-core: run tools/build.sh (npm ci in ui/)');
need(fs.existsSync(path.join(BUILD, 'share', 'cairn', 'ui', 'index.html')), `no ${BUILD}/share/cairn/ui/index.html: tools/build.sh builds the UI when node and npm exist`);
const { chromium } = createRequire(path.join(SOURCE, 'ui', 'package.json'))('playwright-core');

// The server: one JSON line once seeded and up; it stops when stdin closes.
function startServer() {
  const p = spawn('/usr/bin/python3', [path.join(here, 'studio_server.py')], {
    env: { ...process.env, CAIRN_BUILD_DIR: BUILD, CAIRN_SOURCE_DIR: SOURCE },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: p.stdout });
    rl.once('line', (l) => resolve({ proc: p, ...JSON.parse(l) }));
    p.once('exit', (c) => reject(new Error(`studio_server.py exited with ${c} before it was up`)));
  });
}

const ms = (t0) => Math.round(performance.now() - t0);
let step = 'start';
async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const t0 = performance.now();
  const srv = await startServer();
  const seed = srv.seed;
  figures.seed = seed.seeded_now ? `seeded now: ${seed.runs} runs in ${seed.populate_s} s, all in ${seed.seed_s} s` : `reused (seeded earlier in ${seed.seed_s} s)`;
  figures.server_up_ms = ms(t0);
  figures.registry_seed_s = seed.registry_seed_s;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-e2e-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  let allowed400 = false;
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(30000);
  page.on('pageerror', (e) => errors.push(`[${step}] page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowed400 && /status of 400/.test(m.text())) return; // the bad filter's answer
    if ((step === 'login' || step === 'logout') && /status of 401/.test(m.text())) return; // asked before logging in
    errors.push(`[${step}] console: ${m.text()}`);
  });
  // Never a whole run list, never a whole history.
  const bad = [];
  page.on('request', (r) => {
    const m = r.url().match(/\/api\/v1\/tracking\/(\w+)$/);
    if (!m) return;
    const body = JSON.parse(r.postData() || '{}');
    if (m[1] === 'get_metric_history') bad.push('get_metric_history (a whole history)');
    if (m[1] === 'search_runs' && !(body.max_results > 0 && body.max_results <= 1000)) bad.push(`search_runs max_results ${body.max_results}`);
  });
  try {
    await run(page, seed, srv.http, (v) => (allowed400 = v), errors);
  } finally {
    await ctx.close();
    srv.proc.stdin.end();
    await new Promise((r) => srv.proc.once('exit', r));
    fs.rmSync(profile, { recursive: true, force: true });
  }
  assert.deepEqual(bad, [], 'the UI asked for a whole list or history');
  assert.deepEqual(errors, [], 'console errors');
}

const firstCell = (page, col) => page.locator('[data-testid=runs-body] [role=row]').first().locator('[role=gridcell]').nth(col).innerText();
const colIndex = async (page, label) => (await page.locator('.row.head [role=columnheader]').allInnerTexts()).findIndex((t) => t.trim().replace(/[▲▼]/g, '').trim() === label);

async function visibleRows(page, cols) {
  return page.$$eval(
    '[data-testid=runs-body] [role=row]',
    // a metric's cell holds its whole value in its title
    (rows, cols) => rows.map((r) => cols.map((c) => { const e = r.querySelectorAll('[role=gridcell]')[c]; return e.title || e.innerText; })),
    cols
  );
}

async function run(page, seed, http, allow400, errors) {
  step = 'first rows';
  let t = performance.now();
  await page.goto(`${http}/experiments/${seed.big}`, { waitUntil: 'commit' });
  await page.waitForSelector('[data-testid=runs-body] [role=row]');
  figures.first_rows_ms = ms(t);
  const inDom = await page.locator('[data-testid=runs-body] [role=row]').count();
  assert.ok(inDom > 5 && inDom < 120, `only the rows in view are in the DOM (${inDom})`);
  await shot(page, '01-runs');

  step = 'scroll pages';
  const body = page.locator('[data-testid=runs-body]');
  for (let i = 0; i < 3; i++) {
    await body.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForFunction((n) => parseInt(document.querySelector('[data-testid=count]').innerText) > n, 100 + 300 * i);
  }
  assert.ok((await page.locator('[data-testid=runs-body] [role=row]').count()) < 120, 'still a window of rows after paging');
  await body.evaluate((el) => (el.scrollTop = 0));

  step = 'sort by a metric';
  const m1 = await colIndex(page, 'm1');
  assert.ok(m1 > 0, 'an m1 column');
  const before = await firstCell(page, m1);
  t = performance.now();
  await page.getByRole('button', { name: 'sort by m1' }).click();
  // the new rows: the first cell changed and the cells shown run downwards
  // (not just a changed first cell: the scroll to the top above may still
  // be redrawing on a loaded machine)
  await page.waitForFunction(([c, b]) => {
    const rows = [...document.querySelectorAll('[data-testid=runs-body] [role=row]')];
    const v = rows.map((r) => Number(r.querySelectorAll('[role=gridcell]')[c].title || r.querySelectorAll('[role=gridcell]')[c].innerText));
    return rows.length > 5 && rows[0].querySelectorAll('[role=gridcell]')[c].innerText !== b && v.every((x, i) => i === 0 || v[i - 1] >= x) && !document.querySelector('[data-testid=count]').innerText.includes('loading');
  }, [m1, before]);
  figures.sort_ms = ms(t);
  const sorted = (await visibleRows(page, [m1])).map((r) => Number(r[0]));
  assert.ok(sorted.every((v, i) => i === 0 || sorted[i - 1] >= v), `m1 descending: ${sorted.slice(0, 5)}`);
  assert.ok(sorted[0] > 0.999, `the top m1 of 100,000 uniform values (${sorted[0]})`);
  await shot(page, '02-sorted');

  step = 'filter with OR';
  const [m2, p0] = [await colIndex(page, 'm2'), await colIndex(page, 'p0')];
  await page.getByLabel('Filter').fill("metrics.m1 > 0.999 OR (params.p0 = 'v3' AND metrics.m2 < 0.005)");
  t = performance.now();
  await page.getByLabel('Filter').press('Enter');
  // the filter's first page shown: loaded, and every row a match
  await page.waitForFunction(([c1, c2, cp]) => {
    if (document.querySelector('[data-testid=count]').innerText.includes('loading')) return false;
    const rows = [...document.querySelectorAll('[data-testid=runs-body] [role=row]')];
    return rows.length > 0 && rows.every((r) => {
      const g = r.querySelectorAll('[role=gridcell]');
      const v = (c) => Number(g[c].title || g[c].innerText);
      return v(c1) > 0.999 || (g[cp].innerText.trim() === 'v3' && v(c2) < 0.005);
    });
  }, [m1, m2, p0]);
  figures.filter_ms = ms(t);
  // every page of the matches, scrolled to (their count is known then)
  for (let i = 0; i < 20 && /more as you scroll/.test(await page.getByTestId('count').innerText()); i++) {
    const was = await page.getByTestId('count').innerText();
    await body.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForFunction((w) => {
      const now = document.querySelector('[data-testid=count]').innerText;
      return now !== w && !now.includes('loading');
    }, was);
  }
  assert.match((await page.getByTestId('count').innerText()).trim(), /^\d+ runs$/);
  await body.evaluate((el) => (el.scrollTop = 0));
  const rows = await visibleRows(page, [m1, m2, p0]);
  const matched = parseInt(await page.getByTestId('count').innerText());
  figures.filter_matched = matched; // about 100 + 50 of 100,000 uniform values
  assert.ok(matched > 50 && matched < 300 && rows.length > 10, `the filter matched ${matched} runs`);
  for (const [a, b, p] of rows) assert.ok(Number(a) > 0.999 || (p === 'v3' && Number(b) < 0.005), `a row that does not match: ${a} ${b} ${p}`);
  // ascending, the OR's other branch comes first
  await page.getByRole('button', { name: 'sort by m1' }).click();
  await page.waitForFunction((c) => {
    const r = document.querySelector('[data-testid=runs-body] [role=row]');
    return r && Number(r.querySelectorAll('[role=gridcell]')[c].title) <= 0.999;
  }, m1);
  for (const [a, b, p] of await visibleRows(page, [m1, m2, p0]))
    assert.ok(Number(a) > 0.999 || (p === 'v3' && Number(b) < 0.005), `a row that does not match: ${a} ${b} ${p}`);
  await shot(page, '03-filter-or');

  step = 'bad filter';
  allow400(true);
  await page.getByLabel('Filter').fill('metrics.m1 >> 3 OR (');
  await page.getByLabel('Filter').press('Enter');
  const err = await page.getByTestId('filter-error').innerText();
  assert.match(err, /filter|position|unexpected/i, `the server's sentence (${err})`);
  figures.bad_filter_message = err;
  await shot(page, '04-bad-filter');
  allow400(false);

  step = 'keyboard';
  await page.getByLabel('Filter').fill('');
  await page.getByLabel('Filter').press('Enter');
  await page.waitForSelector('[data-testid=runs-body] [role=row]');
  await page.waitForFunction(() => !document.querySelector('[data-testid=filter-error]'));
  await body.focus();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  const focused = await page.locator('.row.focus [role=gridcell]').nth(1).innerText();
  assert.equal(await body.getAttribute('aria-activedescendant'), 'run-row-2');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/runs\//);
  await page.waitForSelector('[data-testid=chart][data-state=drawn] canvas');
  assert.equal((await page.locator('h1').innerText()).trim(), focused.trim());
  await shot(page, '05-run');

  step = 'a long run and its chart';
  t = performance.now();
  await page.goto(`${http}/runs/${seed.long_runs[0]}`, { waitUntil: 'commit' });
  await page.waitForSelector('[data-testid=chart][data-state=drawn] canvas');
  figures.run_chart_ms = ms(t); // its first metric, acc: 1,000 points
  await page.getByLabel('Metric to chart', { exact: true }).selectOption('loss');
  await page.waitForFunction(() => /of 100,000 points/.test(document.querySelector('[data-testid=chart-info]').innerText));
  assert.equal(await page.getByTestId('run-status').innerText(), 'FINISHED');
  // its log: the artifact logs/output.log (not a job's run)
  await page.waitForFunction(() => /epoch 2 loss 0.5/.test(document.querySelector('[data-testid=run-log][data-state=shown]')?.innerText));
  await shot(page, '06-run-chart');

  step = 'zoom: the server samples the zoomed range';
  const over = await page.locator('[data-testid=chart] .u-over').boundingBox();
  const asked = page.waitForRequest((r) => r.url().endsWith('/get_metric_history_sampled') && 'start_step' in JSON.parse(r.postData() || '{}'));
  await page.mouse.move(over.x + over.width * 0.4, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.42, over.y + over.height / 2, { steps: 5 });
  await page.mouse.up();
  const zoomBody = JSON.parse((await asked).postData());
  assert.ok(zoomBody.end_step > zoomBody.start_step && zoomBody.start_step > 30000 && zoomBody.end_step < 50000, JSON.stringify(zoomBody));
  await page.waitForFunction(() => /in the zoomed range/.test(document.querySelector('[data-testid=chart-info]').innerText));
  const zoomInfo = await page.getByTestId('chart-info').innerText();
  const [, zDrawn, zThere] = zoomInfo.match(/^([\d,]+) of 100,000 points in the zoomed range \(([\d,]+) there\)/).map((x) => Number(String(x).replace(/,/g, '')));
  assert.ok(zThere > 0 && zThere < 5000 && zDrawn === zThere, zoomInfo); // every point of the range: finer than the whole
  figures.zoom = zoomInfo;
  await shot(page, '06b-run-chart-zoomed');
  await page.locator('[data-testid=chart] .u-over').dblclick();
  await page.waitForFunction(() => !/zoomed/.test(document.querySelector('[data-testid=chart-info]').innerText));

  step = 'a running run, live';
  // a new run each time, in an experiment of its own (the seeded state is
  // kept between test runs), deleted at the end
  const liveExp = await api(http, 'tracking', 'get_experiment_by_name', { experiment_name: 'studio-live' }).then(
    (j) => j.experiment.experiment_id,
    () => api(http, 'tracking', 'create_experiment', { name: 'studio-live' }).then((j) => j.experiment_id)
  );
  const liveRun = (await api(http, 'tracking', 'create_run', { experiment_id: liveExp, run_name: 'e2e-live' })).run.info.run_id;
  const logSteps = (a, b) =>
    api(http, 'tracking', 'log_batch', { run_id: liveRun, metrics: [...Array(b - a).keys()].map((i) => ({ key: 'live', value: Math.sin(a + i), timestamp: Date.now(), step: a + i })) });
  await logSteps(0, 10);
  await page.goto(`${http}/runs/${liveRun}`);
  await page.waitForFunction(() => /^10 of 10 points/.test(document.querySelector('[data-testid=chart-info]')?.innerText));
  await page.waitForSelector('[data-testid=chart-live][data-live=open]'); // the event stream is open
  t = performance.now();
  await logSteps(10, 25);
  // drawn again by itself (no reload): the gateway's run.metrics event
  await page.waitForFunction(() => /^25 of 25 points/.test(document.querySelector('[data-testid=chart-info]')?.innerText), null, { timeout: 30000 });
  figures.live_chart_ms = ms(t);
  await shot(page, '06c-run-live');
  await api(http, 'tracking', 'update_run', { run_id: liveRun, status: 'FINISHED', end_time: Date.now() });
  await page.waitForFunction(() => document.querySelector('[data-testid=run-status]').innerText === 'FINISHED', null, { timeout: 30000 });
  await api(http, 'tracking', 'delete_run', { run_id: liveRun });
  await page.goto(`${http}/runs/${seed.long_runs[0]}`);
  await page.waitForSelector('[data-testid=chart][data-state=drawn] canvas');

  step = 'browse and preview artifacts';
  const files = page.getByRole('list', { name: 'Artifacts' });
  await files.getByRole('button', { name: 'notes.txt' }).click();
  assert.match(await page.getByTestId('preview').innerText(), /trained on the studio seed/);
  await files.getByRole('button', { name: 'config.json' }).click();
  await page.waitForFunction(() => /"layers"/.test(document.querySelector('[data-testid=preview]')?.innerText));
  await files.getByRole('button', { name: 'plot.png' }).click();
  await page.waitForFunction(() => document.querySelector('img[data-testid=preview]')?.naturalWidth === 32);
  await files.getByRole('button', { name: 'data/' }).click();
  await files.getByRole('button', { name: 'table.csv' }).click();
  const csv = page.getByTestId('preview').locator('table');
  await csv.waitFor();
  assert.deepEqual(await csv.locator('th').allInnerTexts(), ['epoch', 'loss', 'acc']);
  assert.equal(await csv.locator('tbody tr').count(), 3);
  assert.equal(await csv.locator('tbody tr').nth(1).locator('td').nth(2).innerText(), '0.75');
  const dl = await files.getByRole('link', { name: 'download table.csv' }).getAttribute('href');
  const got = await page.evaluate((u) => fetch(u).then((r) => r.text()), dl);
  assert.match(got, /^epoch,loss,acc\n1,0.9,0.5/);
  await shot(page, '07-artifacts');

  step = 'compare three runs';
  await page.goto(`${http}/experiments/${seed.long}`);
  await page.waitForSelector('[data-testid=runs-body] [role=row]');
  // a tag's column, chosen
  await page.getByText(/^Tags \(/).click();
  await page.getByRole('checkbox', { name: 'team' }).check();
  await page.getByText(/^Tags \(/).click();
  const teamCol = await colIndex(page, 'team');
  assert.ok(teamCol > 0, 'a team column');
  assert.equal(await firstCell(page, teamCol), 'studio');
  // Shift-click selects a range: 0, then Shift 5 (0..5), then Shift 3
  // (3 is selected: 3..5 unselected), leaving 0..2.
  const rowBox = (i) => page.locator('[data-testid=runs-body] [role=row]').nth(i).getByRole('checkbox');
  const selectedRows = () => page.$$eval('[data-testid=runs-body] [role=row][aria-selected=true]', (rs) => rs.map((r) => Number(r.getAttribute('aria-rowindex')) - 2));
  await rowBox(0).check();
  await rowBox(5).click({ modifiers: ['Shift'] });
  await page.getByText('6 selected').waitFor();
  assert.deepEqual(await selectedRows(), [0, 1, 2, 3, 4, 5]);
  await shot(page, '08a-shift-range');
  await rowBox(3).click({ modifiers: ['Shift'] });
  await page.getByText('3 selected').waitFor();
  assert.deepEqual(await selectedRows(), [0, 1, 2]);
  // by keyboard: Space on row 7 (the anchor), Shift+Space on row 8, then
  // the same again to unselect them
  await page.getByTestId('runs-body').focus();
  await page.keyboard.press('Home');
  for (let i = 0; i < 7; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Space');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Shift+Space');
  await page.getByText('5 selected').waitFor();
  assert.deepEqual(await selectedRows(), [0, 1, 2, 7, 8]);
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Space');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Space');
  await page.getByText('3 selected').waitFor();
  assert.deepEqual(await selectedRows(), [0, 1, 2]);
  await page.getByRole('button', { name: 'Compare' }).click();
  await page.waitForURL(/\/compare\?runs=/);
  await page.waitForSelector('[data-testid=chart][data-state=drawn] canvas');
  const diff = await page.getByTestId('param-diff').innerText();
  assert.match(diff, /lr/, 'lr differs');
  assert.doesNotMatch(diff, /optimizer/, 'optimizer is the same in all three');
  assert.equal(await page.locator('.u-legend .u-series').count(), 4, 'x and three runs');
  await shot(page, '08-compare');

  step = 'chart of 10 runs x 100,000 steps';
  t = performance.now();
  await page.goto(`${http}/compare?runs=${seed.long_runs.join(',')}&metric=loss`, { waitUntil: 'commit' });
  await page.waitForSelector('[data-testid=chart][data-state=drawn] canvas');
  figures.chart_10x100k_ms = ms(t);
  figures.chart_10x100k_app_ms = Number(await page.getByTestId('chart').getAttribute('data-ms'));
  assert.match(await page.getByTestId('chart-info').innerText(), /of 1,000,000 points/);
  await shot(page, '09-chart-10-runs');

  step = 'compare: scatter and parallel coordinates';
  const scatter = page.getByTestId('scatter');
  await page.getByLabel('scatter metric').selectOption('loss');
  await page.getByLabel('scatter param').selectOption('lr');
  await page.waitForSelector('[data-testid=scatter][data-x=numeric]');
  assert.equal(await scatter.locator('circle.pt').count(), 10, 'a point per run');
  assert.match(await scatter.locator('circle.pt title').first().textContent(), /lr=0\.1, loss=/);
  // lr grows to the right: run long-0 (lr 0.1) is the rightmost point
  const cx = await scatter.locator('circle.pt').evaluateAll((cs) => cs.map((c) => Number(c.getAttribute('cx'))));
  assert.equal(Math.max(...cx), cx[0], 'the largest lr rightmost');
  await page.getByLabel('scatter param').selectOption('optimizer');
  await page.waitForSelector('[data-testid=scatter][data-x=categorical]');
  assert.equal(await scatter.locator('circle.pt').count(), 10);
  assert.deepEqual(await scatter.locator('text').allTextContents().then((t) => t.filter((x) => x === 'adam')), ['adam'], 'one category');
  const par = page.getByTestId('parallel');
  assert.equal(await par.locator('polyline.run').count(), 10, 'a polyline per run');
  const axesBefore = await par.locator('g.axis').count();
  assert.ok(axesBefore >= 3, `axes: ${axesBefore}`);
  await page.getByText(/^Axes \(/).click();
  await page.getByRole('checkbox', { name: 'param:optimizer' }).check();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=parallel] g.axis').length === n + 1, axesBefore);
  assert.equal(await par.locator('g.axis[data-axis="param:optimizer"]').count(), 1);
  // each polyline has a point on each axis
  const npts = await par.locator('polyline.run').evaluateAll((ls) => ls.map((l) => l.getAttribute('points').split(' ').length));
  assert.deepEqual(npts, Array(10).fill(axesBefore + 1));
  await page.getByText(/^Axes \(/).click();
  await page.getByTestId('parallel').scrollIntoViewIfNeeded();
  await shot(page, '09b-compare-scatter-parallel');

  step = 'compare: brushing a parallel axis';
  const brushArea = await par.locator('g.axis[data-axis="metric:loss"] rect.brush-area').boundingBox();
  const bx = brushArea.x + brushArea.width / 2;
  await page.mouse.move(bx, brushArea.y + 2);
  await page.mouse.down();
  await page.mouse.move(bx, brushArea.y + brushArea.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => /of 10 runs in the brushed ranges/.test(document.querySelector('[data-testid=parallel-kept]').innerText));
  const keptN = Number((await page.getByTestId('parallel-kept').innerText()).match(/^(\d+) of 10/)[1]);
  assert.ok(keptN >= 1 && keptN <= 9, `the upper half of loss keeps some runs, not all: ${keptN}`);
  assert.equal(await par.locator('polyline.run.dim').count(), 10 - keptN, 'the others dimmed');
  await shot(page, '09c-parallel-brushed');
  await page.mouse.click(bx, brushArea.y + brushArea.height * 0.8); // a click clears it
  await page.waitForFunction(() => /drag along an axis/.test(document.querySelector('[data-testid=parallel-kept]').innerText));
  assert.equal(await par.locator('polyline.run.dim').count(), 0);

  step = 'dark theme';
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForSelector('[data-testid=chart][data-scheme=dark] canvas'); // redrawn in dark colours
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `a dark background (${bg})`);
  await shot(page, '10-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  await registrySteps(page, seed, http, allow400, errors);
}

// POST /api/v1/SVC/VERB from the test itself (what the server says now).
async function api(http, svc, verb, body = {}) {
  const r = await fetch(`${http}/api/v1/${svc}/${verb}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  assert.ok(r.ok, `${svc}.${verb}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

// The models, endpoints and jobs pages (studio_server.py seeds a model with
// two versions, an endpoint with two deployments of it, a finished job).
async function registrySteps(page, seed, http, allow400, errors) {
  step = 'models';
  await page.goto(`${http}/models`);
  await page.getByRole('link', { name: seed.model, exact: true }).click();
  await page.waitForURL(/\/models\//);
  const versions = page.getByTestId('versions');
  await versions.locator('tr[data-version="2"]').waitFor();
  assert.equal((await versions.locator('tr[data-version="1"] [data-testid=version-aliases]').innerText()).trim(), 'champion');
  await shot(page, '11-models');

  step = 'move an alias';
  await page.getByLabel('Alias', { exact: true }).fill('champion');
  await page.getByLabel('Version', { exact: true }).selectOption('2');
  await page.getByRole('button', { name: 'Set alias' }).click();
  // the page shows it: version 2 holds champion, and the timeline's newest move is it
  await page.waitForFunction(() => /champion/.test(document.querySelector('[data-testid=versions] tr[data-version="2"] [data-testid=version-aliases]')?.innerText));
  assert.doesNotMatch(await versions.locator('tr[data-version="1"] [data-testid=version-aliases]').innerText(), /champion/);
  assert.match(await page.getByTestId('alias-history').locator('li').first().innerText(), /champion → version 2/);
  const held = await api(http, 'registry', 'get_model_version_by_alias', { name: seed.model, alias: 'champion' });
  assert.equal(held.model_version.version, 2, 'the registry says champion is version 2');

  step = 'lineage of a version';
  await page.getByRole('button', { name: 'lineage of version 2' }).click();
  const graph = page.locator('svg[data-testid=lineage]');
  await graph.waitFor();
  const types = await graph.locator('g.node').evaluateAll((ns) => ns.map((n) => n.getAttribute('class')));
  for (const t of ['run', 'model_version', 'deployment', 'endpoint']) assert.ok(types.some((c) => c.includes(t)), `a ${t} node in the lineage (${types})`);
  assert.ok((await graph.locator('g.edge').count()) >= 3, 'edges produced, deployed, serves');
  await shot(page, '12-model-alias-moved');

  step = 'endpoints';
  await page.goto(`${http}/endpoints`);
  await page.getByRole('link', { name: seed.endpoint, exact: true }).click();
  await page.waitForURL(/\/endpoints\//);
  await page.getByTestId('deployments').locator('tbody tr').nth(1).waitFor();
  // the metrics are polled: the charts get more samples (the server scores a few requests a second)
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=rate-chart]')?.dataset.samples) >= 3, null, { timeout: 60000 });
  assert.ok(Number(await page.getByTestId('metrics').locator('tbody tr').first().locator('td').first().innerText()) > 0, 'blue has requests');
  await shot(page, '13-endpoint');

  step = 'mirror to green';
  let updates = 0;
  const count = (r) => /\/endpoints\/update_traffic$/.test(r.url()) && updates++;
  page.on('request', count);
  const traffic = page.getByTestId('traffic-form');
  const mirror = page.getByTestId('mirror-form');
  await mirror.getByLabel('Mirror % for green').fill('20');
  await mirror.getByRole('button', { name: 'Apply mirror' }).click();
  await page.waitForFunction(() => /green 20%/.test(document.querySelector('[data-testid=mirror]').innerText));

  step = 'a traffic split that does not sum to 100';
  await traffic.getByLabel('Traffic % for blue').fill('30');
  await traffic.getByLabel('Traffic % for green').fill('60');
  await traffic.getByRole('button', { name: 'Apply traffic' }).click();
  assert.match(await traffic.getByTestId('traffic-msg').innerText(), /sum to 90%.*Nothing was sent/);
  assert.equal(updates, 0, 'refused here: no update_traffic sent');

  step = 'traffic to a mirroring deployment: the server refuses';
  allow400(true);
  // the slider by keyboard: green 60 -> 70
  await traffic.getByLabel('Traffic for green (slider)').focus();
  for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowRight');
  assert.equal(await traffic.getByLabel('Traffic % for green').inputValue(), '70');
  assert.match(await traffic.getByTestId('traffic-sum').innerText(), /100%/);
  await traffic.getByRole('button', { name: 'Apply traffic' }).click();
  await page.waitForFunction(() => /mirrored traffic/.test(document.querySelector('[data-testid=traffic-msg]').innerText));
  assert.equal(updates, 1);
  await shot(page, '14-endpoint-refused');
  allow400(false);

  step = 'change the traffic split';
  await mirror.getByLabel('Mirror % for green').fill('0');
  await mirror.getByRole('button', { name: 'Apply mirror' }).click();
  await page.waitForFunction(() => /none/.test(document.querySelector('[data-testid=mirror]').innerText));
  // the forms start again from the server's values after a change
  await traffic.getByLabel('Traffic % for blue').fill('30');
  await traffic.getByLabel('Traffic % for green').fill('70');
  await traffic.getByRole('button', { name: 'Apply traffic' }).click();
  await page.waitForFunction(() => /blue 30%, green 70%/.test(document.querySelector('[data-testid=traffic]').innerText));
  const ep = await api(http, 'endpoints', 'get_endpoint', { name: seed.endpoint });
  assert.deepEqual(ep.endpoint.traffic, { blue: 30, green: 70 }, 'the server has the new split');
  page.off('request', count);
  assert.equal(updates, 2, 'one update_traffic per apply, the whole map');
  // green takes requests now: its line in the charts
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=metrics] tbody tr:nth-child(2) td')?.innerText) > 0, null, { timeout: 60000 });
  await shot(page, '15-endpoint-split');

  step = 'jobs';
  const spec = { command: seed.job_command, experiment_name: 'studio-jobs', display_name: 'e2e lines' };
  const job = (await api(http, 'jobs', 'submit_job', { spec })).job;
  await page.goto(`${http}/jobs`);
  await page.locator(`[data-testid=jobs] tr[data-job="${job.name}"]`).waitFor();
  await page.getByLabel('Status', { exact: true }).selectOption('Completed');
  await page.locator(`[data-testid=jobs] tr[data-job="${seed.hello_job}"]`).waitFor();
  for (const s of await page.locator('[data-testid=jobs] tbody .status').allInnerTexts()) assert.equal(s, 'Completed');
  await shot(page, '16-jobs');

  step = "a job's log growing";
  await page.getByLabel('Status', { exact: true }).selectOption('');
  await page.locator(`[data-testid=jobs] tr[data-job="${job.name}"]`).getByRole('link', { name: job.name }).click();
  await page.waitForURL(/\/jobs\//);
  const log = page.getByTestId('job-log');
  await page.waitForFunction(() => /line \d/.test(document.querySelector('[data-testid=job-log]')?.innerText), null, { timeout: 60000 });
  const first = await log.evaluate((el) => ({ len: el.innerText.length, done: el.dataset.done }));
  assert.equal(first.done, 'false', 'the job was still running when its log was first seen');
  await page.waitForSelector('[data-testid=job-live][data-live=open]'); // its status follows its events
  await page.waitForFunction((n) => document.querySelector('[data-testid=job-log]').innerText.length > n, first.len, { timeout: 60000 });
  figures.job_log_first_len = first.len;
  await shot(page, '17-job-log-live');
  await page.waitForSelector('[data-testid=job-log][data-done=true]', { timeout: 90000 });
  const text = await log.innerText();
  assert.match(text, /^line 1\n(.|\n)*line 60\s*$/, 'the whole log, in order');
  assert.equal(text.match(/line \d+/g).length, 60, 'each line once');
  await page.waitForFunction(() => document.querySelector('[data-testid=job-status]').innerText === 'Completed');
  await shot(page, '18-job-done');
  // its run's lineage (a run of a job: none recorded), then a model's run: run -> version
  await page.getByRole('link', { name: job.run_id.slice(0, 12) }).click();
  await page.waitForURL(/\/runs\//);
  // a job's run shows its job and the job's log
  await page.getByRole('link', { name: job.name }).waitFor();
  await page.waitForSelector('[data-testid=job-log][data-done=true]', { timeout: 60000 });
  assert.match(await page.getByTestId('job-log').innerText(), /^line 1\n(.|\n)*line 60\s*$/, "the run's log, whole");
  await shot(page, '18a-run-log');
  await page.getByText('Lineage', { exact: true }).click();
  await page.getByTestId('lineage').waitFor();

  step = 'cancel a job';
  const long = (await api(http, 'jobs', 'submit_job', { spec: { command: 'echo started; sleep 60', experiment_name: 'studio-jobs', display_name: 'e2e cancel' } })).job;
  await page.goto(`${http}/jobs/${long.name}`);
  await page.waitForFunction(() => /started/.test(document.querySelector('[data-testid=job-log]')?.innerText), null, { timeout: 60000 });
  // its run's page, open in a second tab while it runs: the job's log live
  const runPage = await page.context().newPage();
  runPage.on('pageerror', (e) => errors.push(`[${step}, run page] page error: ${e.message}`));
  runPage.on('console', (m) => m.type() === 'error' && errors.push(`[${step}, run page] console: ${m.text()}`));
  await runPage.goto(`${http}/runs/${long.run_id}`);
  await runPage.waitForFunction(() => /started/.test(document.querySelector('[data-testid=job-log]')?.innerText), null, { timeout: 60000 });
  assert.equal(await runPage.getByTestId('job-log').getAttribute('data-done'), 'false');
  assert.equal(await runPage.getByTestId('run-status').innerText(), 'RUNNING');
  await page.getByRole('button', { name: 'Cancel job' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=job-status]').innerText === 'Canceled', null, { timeout: 60000 });
  await page.waitForSelector('[data-testid=job-log][data-done=true]', { timeout: 60000 });
  await shot(page, '19-job-canceled');
  // the open run page follows by itself (no reload): the log ends, the
  // status changes, the log lands among its artifacts
  await runPage.waitForSelector('[data-testid=job-log][data-done=true]', { timeout: 60000 });
  await runPage.waitForFunction(() => document.querySelector('[data-testid=run-status]').innerText !== 'RUNNING', null, { timeout: 60000 });
  await runPage.getByRole('button', { name: 'logs/' }).waitFor({ timeout: 60000 }); // the artifacts asked again
  await shot(runPage, '19a-run-log-after-cancel');
  await runPage.close();

  await auditSteps(page, seed);
  await authSteps(page, seed);
}

// Security on (studio_server.py's third cairnd): the login page, then the
// workspace switcher of a user with a role in two workspaces.
async function authSteps(page, seed) {
  const http = seed.auth_http;
  step = 'login';
  await page.goto(`${http}/`);
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  await page.getByLabel('User').fill(seed.auth_user);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('.login [role=alert]').waitFor(); // the server's sentence
  await page.getByLabel('Password').fill(seed.auth_password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('link', { name: 'default-exp' }).waitFor();
  await shot(page, '22-logged-in');

  step = 'workspace switcher';
  const ws = page.getByTestId('workspace');
  assert.deepEqual(await ws.locator('option').allInnerTexts(), ['default', 'team-b']);
  await ws.selectOption('team-b');
  await page.getByRole('link', { name: 'team-b-exp' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'default-exp' }).count(), 0, "the other workspace's experiment is not shown");
  await page.reload();
  await page.getByRole('link', { name: 'team-b-exp' }).waitFor(); // kept in the browser
  assert.equal(await page.getByTestId('workspace').inputValue(), 'team-b');
  await shot(page, '23-workspace-b');
  step = 'logout';
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
}

// The audit page, against studio_server.py's second, small cairnd (its
// kernel records to the audit service; seeded with 12 experiments created,
// one created again: 409, and a run).
async function auditSteps(page, seed) {
  const http = seed.audit_http;
  const table = page.getByTestId('audit');
  const rows = table.locator('tbody tr');
  const seqs = () => rows.evaluateAll((rs) => rs.map((r) => Number(r.dataset.seq)));
  const search = async () => {
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/audit/query'));
    await page.getByRole('button', { name: 'Search' }).click();
    await answered;
    await page.waitForSelector('[data-testid=audit][aria-busy=false]');
  };

  step = 'audit: the trail';
  await page.goto(`${http}/audit`);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=audit] tbody tr').length >= n, seed.audit_records);
  const all = await seqs();
  assert.deepEqual(all.slice(0, seed.audit_records), [...Array(seed.audit_records).keys()].map((i) => i + 1), 'oldest first, from 1');
  const statuses = await rows.evaluateAll((rs) => rs.map((r) => r.lastElementChild.innerText));
  assert.deepEqual(statuses.filter((x) => x !== '200'), ['409'], 'the experiment created again: 409');
  await page.getByLabel('Status', { exact: true }).selectOption('refused');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=audit] tbody tr').length === 1);
  assert.deepEqual(await seqs(), [13]);
  assert.match(page.url(), /[?&]status=refused/); // asked of the server (min_status), kept in the URL
  await page.getByLabel('Status', { exact: true }).selectOption('');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=audit] tbody tr').length >= n, seed.audit_records);
  await shot(page, '20-audit');

  step = 'audit: filters';
  await page.getByLabel('Verb').fill('create_run');
  await search();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=audit] tbody tr').length === 1);
  assert.match(await rows.first().innerText(), /tracking\s+create_run\s+run\/\w+\s+200/);
  await page.getByLabel('Verb').fill('');
  await page.getByLabel('Since').fill('2099-01-01T00:00');
  await search();
  await page.getByText('No records.').waitFor();
  // the filters asked are in the URL: a reload asks the same
  assert.match(page.url(), /\/audit\?since=2099-01-01T00%3A00$/);
  await page.reload();
  await page.getByText('No records.').waitFor();
  assert.equal(await page.getByLabel('Since').inputValue(), '2099-01-01T00:00');
  await page.getByLabel('Since').fill('');

  step = 'audit: pages';
  await page.getByLabel('Per page').selectOption('5');
  await search();
  await page.waitForFunction(() => document.querySelector('[data-testid=audit] tbody tr')?.dataset.seq === '1' && document.querySelectorAll('[data-testid=audit] tbody tr').length === 5);
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=audit] tbody tr')?.dataset.seq === '6');
  assert.deepEqual(await seqs(), [6, 7, 8, 9, 10]);
  await page.getByRole('button', { name: 'Previous page' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=audit] tbody tr')?.dataset.seq === '1');

  step = 'audit: a new record, and verify';
  const made = await api(http, 'tracking', 'create_experiment', { name: 'audit-from-e2e' });
  await page.getByLabel('Per page').selectOption('100');
  await page.getByLabel('Service').fill('tracking');
  await page.getByLabel('Object').fill(`experiment/${made.experiment_id}`);
  // the kernel hands records over in groups: search again until it is there
  for (let i = 0; i < 100 && !(await seqs()).some((q) => q > seed.audit_records); i++) await search();
  assert.match(await rows.last().innerText(), /create_experiment/);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByTestId('verdict').waitFor();
  const verdict = await page.getByTestId('verdict').innerText();
  const n = Number(verdict.match(/^ok: the chain of (\d+) records holds$/)?.[1]);
  assert.ok(n >= seed.audit_records + 1, verdict);
  await shot(page, '21-audit-verify');
}

main().then(
  () => {
    report();
    console.log(`studio e2e: screenshots in ${SHOTS}`);
    console.log('studio e2e: PASS');
  },
  (e) => {
    report();
    console.error(`studio e2e: FAILED at "${step}": ${e.stack || e.message}`);
    process.exit(1);
  }
);
