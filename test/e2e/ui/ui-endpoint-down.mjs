// Browser test of the querier UI with one endpoint really down, run by
// test/e2e/ui_test.go after ui.mjs once it has killed a sidecar. Environment:
//   VIGIL_UI_URL  base URL of the querier's HTTP server
//   DEAD          gRPC address of the killed endpoint
//   TARGETS       number of scrape targets (series of `up` after deduplication)
//   ARTEFACTS, CHROMIUM  see browser.mjs
// The Graph panel must still draw the other replica's data and show the querier's
// warning about the dead endpoint as readable text; the Stores page its error.
import { T, assert, run, shot } from './browser.mjs';

const base = process.env.VIGIL_UI_URL.replace(/\/$/, '');
const dead = process.env.DEAD;
const targets = Number(process.env.TARGETS || 3);

await run(async (s) => {
  const { page, ok } = s;
  assert(dead, 'DEAD not set');

  s.step = 'api';
  // What the querier itself says, to compare with the page.
  const end = Math.floor(Date.now() / 1000);
  const api = await (await page.request.get(`${base}/api/v1/query_range?query=up&start=${end - 120}&end=${end}&step=1&partial_response=true`)).json();
  const warnings = (api.warnings || []).filter((w) => w.includes(dead));
  assert(api.status === 'success' && warnings.length > 0, `query_range with ${dead} down: ${JSON.stringify(api).slice(0, 500)}`);
  ok(`querier warns: ${warnings[0]}`);

  s.step = 'graph-warning';
  await page.goto(`${base}/graph?g0.expr=up&g0.range_input=2m&g0.partial_response=1`);
  await page.waitForSelector('[data-testid=panel] .alert-warning', { timeout: T });
  await page.waitForFunction((n) => document.querySelectorAll('.legend-item').length === n, targets, { timeout: T }).catch(async () => {
    throw new Error(`legend: ${JSON.stringify(await page.locator('.legend-item').allTextContents())}`);
  });
  const warn = page.locator('[data-testid=panel] .alert-warning').first();
  assert(await warn.isVisible(), 'warning not visible');
  const text = (await warn.innerText()).trim();
  assert(text.includes(dead), `warning ${JSON.stringify(text)} does not name ${dead}`);
  // Readable: the querier's message itself, not an empty box or [object Object].
  const core = warnings[0].slice(warnings[0].indexOf(dead));
  assert(text.includes(core.slice(0, 40)) && !text.includes('[object'), `warning ${JSON.stringify(text)} vs querier's ${JSON.stringify(warnings[0])}`);
  const box = await warn.boundingBox();
  assert(box && box.height >= 16 && box.width >= 200, `warning box ${JSON.stringify(box)}`);
  assert((await page.locator('.uplot canvas').count()) > 0, 'no chart next to the warning');
  ok(`warning shown above ${targets} series of the live replica: ${text}`);
  await shot(page, 'endpoint-down');

  s.step = 'stores';
  await page.goto(`${base}/stores`);
  await page.waitForFunction((dead) => [...document.querySelectorAll('[data-testid=store-row]')].some((r) => r.textContent.includes(dead)), dead, { timeout: T });
  const row = page.locator('[data-testid=store-row]', { hasText: dead });
  const rowText = await row.first().innerText();
  assert(rowText.includes('DOWN') && /refused|unavailable/i.test(rowText), `row of ${dead}: ${rowText}`);
  ok(`Stores page row of the dead endpoint: ${rowText.replace(/\s+/g, ' ')}`);
  await shot(page, 'stores-endpoint-down');
});
