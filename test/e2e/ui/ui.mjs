// Browser end-to-end test of the querier UI in headless Chromium, run by
// test/e2e/ui_test.go against real processes. Environment:
//   VIGIL_UI_URL   base URL of the querier's HTTP server (http://127.0.0.1:port)
//   ARTEFACTS, CHROMIUM  see browser.mjs
//   SIDECARS       comma-separated gRPC addresses of the sidecars the Stores page must list
//   STORE_GATEWAY  gRPC address of the store gateway (optional)
//   TARGETS        number of scrape targets (series of `up` after deduplication)
// Prints one line per step; exits 1 on the first failure (with a screenshot fail-*.png).
// The real outage of an endpoint is ui-endpoint-down.mjs, run after this script.
import { T, assert, run, shot as shotOf } from './browser.mjs';

const base = process.env.VIGIL_UI_URL.replace(/\/$/, '');
const sidecars = (process.env.SIDECARS || '').split(',').filter(Boolean);
const storeGW = process.env.STORE_GATEWAY || '';
const targets = Number(process.env.TARGETS || 3);

await run(async (s) => {
  const { ctx, page, consoleErrors, ok } = s;
  const shot = (name, p = page) => shotOf(p, name);
  async function legendCount(n) {
    await page.waitForFunction((n) => document.querySelectorAll('.legend-item').length === n, n, { timeout: T }).catch(async () => {
      const items = await page.locator('.legend-item').allTextContents();
      const alerts = await page.locator('.alert').allTextContents();
      throw new Error(`want ${n} legend entries, have ${items.length}: ${JSON.stringify(items)} alerts: ${JSON.stringify(alerts)}`);
    });
  }

  s.step = 'graph';
  await page.goto(`${base}/`);
  await page.waitForURL(/\/graph/, { timeout: T });
  ok(`/ redirects to ${page.url()}`);
  await page.locator('.cm-content').click();
  await page.keyboard.type('up');
  // The completion list offers metric names from the querier (and functions).
  await page.waitForSelector('.cm-tooltip-autocomplete', { timeout: T });
  const completions = await page.locator('.cm-tooltip-autocomplete li').allTextContents();
  assert(completions.some((c) => c.startsWith('up')), `autocompletion of "up" offers ${JSON.stringify(completions.slice(0, 10))}`);
  ok(`autocompletion offers ${completions.length} entries, e.g. ${JSON.stringify(completions.slice(0, 3))}`);
  await page.keyboard.press('Escape');
  await page.fill('input[name=range_input]', '2m');
  await page.press('input[name=range_input]', 'Tab');
  await page.click('button:has-text("Execute")');
  await legendCount(targets);
  assert((await page.locator('.uplot canvas').count()) > 0, 'no chart canvas');
  const legend = await page.locator('.legend-item').allTextContents();
  assert(legend.every((l) => l.startsWith('up{') && !l.includes('replica=')), `deduplicated legend: ${JSON.stringify(legend)}`);
  ok(`chart drawn, legend lists ${legend.length} series: ${JSON.stringify(legend)}`);
  await shot('graph');

  s.step = 'dedup-off';
  await page.uncheck('input[name=dedup]');
  await legendCount(2 * targets);
  const raw = await page.locator('.legend-item').allTextContents();
  assert(raw.filter((l) => l.includes('replica="r0"')).length === targets && raw.filter((l) => l.includes('replica="r1"')).length === targets,
    `without dedup want ${targets} series per replica: ${JSON.stringify(raw)}`);
  assert(page.url().includes('g0.deduplicate=0'), `URL ${page.url()} lacks g0.deduplicate=0`);
  ok(`two series per target: ${raw.length} legend entries; URL has g0.deduplicate=0`);
  await shot('graph-nodedup');

  s.step = 'dedup-on';
  await page.check('input[name=dedup]');
  await legendCount(targets);
  assert(page.url().includes('g0.deduplicate=1'), `URL ${page.url()} lacks g0.deduplicate=1`);
  ok(`one series per target again`);

  s.step = 'stacked';
  await page.check('input[name=stacked]');
  await legendCount(targets);
  assert(page.url().includes('g0.stacked=1'), 'URL lacks g0.stacked=1');
  ok('stacked graph');
  await page.uncheck('input[name=stacked]');

  s.step = 'table';
  await page.click('button.tab:has-text("Table")');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=table] tr').length === n, targets, { timeout: T });
  assert(/g0\.tab=1/.test(page.url()), `URL ${page.url()} lacks g0.tab=1`);
  ok(`table lists ${targets} rows; URL has g0.tab=1`);
  await shot('table');

  s.step = 'url-params';
  // A Thanos-style link, as in an alert's generatorURL.
  await page.goto(`${base}/graph?g0.expr=${encodeURIComponent('count by (job) (up)')}&g0.tab=1&g0.deduplicate=0&g0.partial_response=1&g0.max_source_resolution=5m&g1.expr=${encodeURIComponent('rate(process_cpu_seconds_total[5s])')}&g1.tab=graph&g1.range_input=90s`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=panel]').length === 2 && document.querySelectorAll('[data-testid=table] tr').length > 0, null, { timeout: T });
  const p0 = page.locator('[data-testid=panel]').nth(0);
  assert((await p0.locator('.cm-content').textContent()) === 'count by (job) (up)', 'panel 0 expression not restored');
  assert(!(await p0.locator('input[name=dedup]').isChecked()), 'g0.deduplicate=0 not applied');
  assert((await p0.locator('select[name=max_source_resolution]').inputValue()) === '5m', 'g0.max_source_resolution=5m not applied');
  assert((await p0.locator('button.tab.active').textContent()) === 'Table', 'g0.tab=1 did not open the table');
  const rows = await p0.locator('[data-testid=table] tr').allTextContents();
  assert(rows.some((r) => r.includes('job="prometheus"') && r.endsWith('4')), `count by job without dedup: ${JSON.stringify(rows)}`);
  const p1 = page.locator('[data-testid=panel]').nth(1);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=panel]')[1].querySelectorAll('.legend-item').length > 0, null, { timeout: T });
  assert((await p1.locator('input[name=range_input]').inputValue()) === '90s', 'g1.range_input not applied');
  ok(`two panels restored from g0.*/g1.* parameters; table rows ${JSON.stringify(rows)}`);
  await shot('graph-two-panels');

  s.step = 'invalid-query';
  // The querier's own error text, as /api/v1/query returns it, must be on the panel.
  const bad = 'sum(rate(up[1m])';
  const apiErr = await (await page.request.get(`${base}/api/v1/query?query=${encodeURIComponent(bad)}`)).json();
  assert(apiErr.status === 'error' && apiErr.errorType === 'bad_data' && apiErr.error, `querier answer to ${bad}: ${JSON.stringify(apiErr)}`);
  await page.goto(`${base}/graph?g0.expr=${encodeURIComponent(bad)}&g0.tab=1`);
  await page.waitForSelector('.alert-error', { timeout: T });
  const err = await page.locator('.alert-error').first().textContent();
  assert(err.includes(apiErr.error), `panel error ${JSON.stringify(err)} lacks the querier's ${JSON.stringify(apiErr.error)}`);
  ok(`querier error shown: ${err}`);
  await shot('error');

  s.step = 'stores';
  await page.goto(`${base}/stores`);
  await page.waitForSelector('[data-testid=store-row]', { timeout: T });
  const storesText = await page.locator('main').textContent();
  for (const a of [...sidecars, storeGW].filter(Boolean)) assert(storesText.includes(a), `Stores page lacks ${a}: ${storesText}`);
  const sideRows = await page.locator('[data-testid=store-group-sidecar] [data-testid=store-row]').count();
  assert(sideRows === sidecars.length, `${sideRows} sidecar rows, want ${sidecars.length}`);
  if (storeGW) assert((await page.locator('[data-testid=store-group-store] [data-testid=store-row]').count()) === 1, 'no store gateway row');
  assert(storesText.includes('replica="r0"') && storesText.includes('replica="r1"'), 'sidecar label sets missing');
  ok(`lists ${sidecars.length} sidecars${storeGW ? ' and the store gateway' : ''} with labels`);
  await shot('stores');

  s.step = 'rules';
  await page.goto(`${base}/rules`);
  await page.waitForSelector('.page-head h1:has-text("Rules")', { timeout: T });
  await page.waitForFunction(() => !document.body.textContent.includes('Loading rules'), null, { timeout: T });
  assert((await page.locator('.alert-error').count()) === 0, `rules page error: ${await page.locator('.alert-error').allTextContents()}`);
  ok('rules page renders');
  await shot('rules');

  s.step = 'alerts';
  await page.goto(`${base}/alerts`);
  await page.waitForSelector('h2:has-text("Active alerts")', { timeout: T });
  ok('alerts page renders');
  await shot('alerts');

  s.step = 'replicas';
  await page.goto(`${base}/replicas?selector=${encodeURIComponent('up{job="prometheus"}')}&range=1m&step=2s`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=replica-group]').length === 2, null, { timeout: T }).catch(async () => {
    throw new Error(`replica groups: ${await page.locator('main').textContent()}`);
  });
  const rrows = await page.locator('[data-testid=replica-row] .replica-row-label').allTextContents();
  assert(rrows.length === 4 && rrows.filter((r) => r.includes('replica="r0"')).length === 2, `replica rows: ${JSON.stringify(rrows)}`);
  assert((await page.locator('svg.timeline rect.seg-present').count()) > 0, 'no coverage drawn');
  ok(`2 series x 2 replicas: ${JSON.stringify(rrows)}`);
  await shot('replicas');

  s.step = 'warnings';
  // API warnings (an endpoint down with partial response) are shown next to the data.
  // The answer is faked here; ui-endpoint-down.mjs has a real outage.
  await page.route('**/api/v1/query_range', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify({
    status: 'success', warnings: ['endpoint 127.0.0.1:1 (sidecar): rpc error: code = Unavailable desc = connection refused'],
    data: { resultType: 'matrix', result: [{ metric: { __name__: 'up', job: 'x' }, values: [[Math.floor(Date.now() / 1000) - 30, '1'], [Math.floor(Date.now() / 1000), '1']] }] } }) }));
  await page.goto(`${base}/graph?g0.expr=up&g0.range_input=1m`);
  await page.waitForSelector('.alert-warning', { timeout: T });
  const warn = await page.locator('.alert-warning').textContent();
  assert(warn.includes('connection refused') && (await page.locator('.legend-item').count()) === 1, `warning: ${warn}`);
  ok(`warning shown with the data: ${warn}`);
  await shot('warning');
  await page.unroute('**/api/v1/query_range');

  s.step = 'big-result';
  // 10,000 series: the table renders the first 1000 with a note, quickly.
  const big = { status: 'success', data: { resultType: 'vector', result: Array.from({ length: 10000 }, (_, i) => ({
    metric: { __name__: 'big', instance: `host-${i}:9100`, job: 'node', i: String(i) }, value: [Date.now() / 1000, String(i)] })) } };
  await page.route('**/api/v1/query', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(big) }));
  await page.goto(`${base}/graph?g0.expr=big&g0.tab=1`);
  await page.waitForSelector('[data-testid=panel] .alert-info', { timeout: T });
  const t0 = Date.now();
  await page.click('button:has-text("Execute")');
  await page.waitForFunction(() => /Load time: \d+ms/.test(document.querySelector('.panel-status')?.textContent || '') &&
    document.querySelectorAll('[data-testid=table] tr').length === 1000, null, { timeout: T });
  const took = Date.now() - t0;
  const note = await page.locator('[data-testid=panel] .alert-info').textContent();
  assert(note.includes('1000 of 10000'), `note: ${note}`);
  assert(took < 5000, `10k-series table took ${took}ms`);
  ok(`10k series: ${note} (${took}ms including the request)`);
  await page.unroute('**/api/v1/query');

  s.step = 'phone';
  const phone = await ctx.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/graph?g0.expr=up&g0.range_input=2m&g0.tab=0`);
  await phone.waitForFunction(() => document.querySelectorAll('.legend-item').length > 0, null, { timeout: T });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `page wider than a phone screen by ${overflow}px`);
  ok('no horizontal overflow at 390px');
  await shot('graph-phone', phone);
  await phone.close();

  const relevant = consoleErrors.filter((e) => !/Failed to load resource|metadata/.test(e));
  assert(relevant.length === 0, `browser console errors: ${JSON.stringify(relevant)}`);
});
