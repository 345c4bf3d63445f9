// Shared setup of the browser tests in this directory (ui.mjs, ui-endpoint-down.mjs,
// bucket.mjs): headless Chromium through playwright-core, screenshots and step logging.
// Environment: CHROMIUM (the binary) and ARTEFACTS (screenshot directory; default a new
// temporary directory). Each script prints one line per step and PASS at the end, or
// FAIL <step>: <reason> with a screenshot fail-<step>.png and exit code 1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const T = 20000; // timeout of one wait, ms
export const out = process.env.ARTEFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-ui-'));

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export async function shot(p, name) {
  const file = path.join(out, `${name}.png`);
  await p.screenshot({ path: file, fullPage: true });
  console.log(`shot ${file}`);
}

// run launches Chromium (desktop viewport 1280x900), collects browser console errors
// and calls body(s) with s = {ctx, page, consoleErrors, step, ok(msg)}; body sets
// s.step as it goes, for the log and the failure screenshot.
export async function run(body) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-ui-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const s = { ctx, page, consoleErrors: [], step: 'start' };
  s.ok = (msg) => console.log(`ok   ${s.step}: ${msg}`);
  page.on('console', (m) => m.type() === 'error' && s.consoleErrors.push(m.text()));
  page.on('pageerror', (e) => s.consoleErrors.push(`pageerror: ${e.message}`));
  try {
    await body(s);
    console.log('PASS');
  } catch (e) {
    console.log(`FAIL ${s.step}: ${e.message}`);
    if (s.consoleErrors.length) console.log(`browser console: ${JSON.stringify(s.consoleErrors)}`);
    await shot(page, `fail-${s.step}`).catch(() => {});
    process.exitCode = 1;
  } finally {
    await ctx.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}
