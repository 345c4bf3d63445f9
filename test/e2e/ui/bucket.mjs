// Browser test of `vigil bucket web`, run by test/e2e/bucket_test.go over a bucket
// filled by uploads and compacted by `vigil compact`. Environment:
//   BUCKET_URL  base URL of `vigil bucket web`
//   BLOCKS      comma-separated ULIDs of every block in the bucket
//   LEVELS      comma-separated compaction levels (> 1) the timeline must have rows for
//   CLICK       ULID of the block to click
//   ARTEFACTS, CHROMIUM  see browser.mjs
import { T, assert, run, shot } from './browser.mjs';

const base = process.env.BUCKET_URL.replace(/\/$/, '');
const blocks = process.env.BLOCKS.split(',').filter(Boolean).sort();
const levels = (process.env.LEVELS || '').split(',').filter(Boolean);
const click = process.env.CLICK;

await run(async (s) => {
  const { ctx, page, ok } = s;
  const ids = async (sel) => [...new Set((await page.locator(sel).evaluateAll((as) => as.map((a) => a.getAttribute('href')))).map((h) => h.replace(/^meta\//, '')))].sort();

  s.step = 'blocks';
  await page.goto(`${base}/`);
  await page.waitForSelector('svg', { timeout: T });
  const inTimeline = await ids('svg a[href^="meta/"]');
  const inTable = await ids('table a[href^="meta/"]');
  assert(JSON.stringify(inTimeline) === JSON.stringify(blocks), `timeline links ${inTimeline.length} blocks ${JSON.stringify(inTimeline)}, want ${blocks.length} ${JSON.stringify(blocks)}`);
  assert(JSON.stringify(inTable) === JSON.stringify(blocks), `table links ${inTable.length} blocks, want ${blocks.length}`);
  assert((await page.locator('table tbody tr').count()) === blocks.length, 'table rows != blocks');
  assert((await page.locator('svg a rect').count()) === blocks.length, 'block rectangles != blocks');
  ok(`${blocks.length} blocks, each drawn once in the timeline and listed in the table`);

  s.step = 'timeline';
  const groups = await page.locator('section.group h3').allInnerTexts();
  assert(groups.some((g) => g.includes('· raw ·')) && groups.some((g) => g.includes('· 5m ·')), `groups ${JSON.stringify(groups)} lack raw and 5m`);
  const rows = await page.locator('section.group', { hasText: '· raw ·' }).locator('svg text.row').allTextContents();
  for (const l of levels) assert(rows.some((r) => r === `L${l}` || r.startsWith(`L${l}·`)), `raw timeline rows ${JSON.stringify(rows)} lack level ${l}`);
  const rows5m = await page.locator('section.group', { hasText: '· 5m ·' }).locator('svg text.row').allTextContents();
  assert(rows5m.length > 0, '5m timeline has no rows');
  assert((await page.locator('.err').count()) === 0, `error banner: ${await page.locator('.err').allInnerTexts()}`);
  ok(`groups ${JSON.stringify(groups)}; raw rows ${JSON.stringify(rows)}, 5m rows ${JSON.stringify(rows5m)}`);
  await shot(page, 'bucket-web');

  s.step = 'phone';
  const phone = await ctx.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/`);
  await phone.waitForSelector('svg', { timeout: T });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `page wider than a phone screen by ${overflow}px (timelines and table should scroll)`);
  ok('no horizontal page overflow at 390px');
  await shot(phone, 'bucket-web-phone');
  await phone.close();

  s.step = 'click';
  const tip = (await page.locator(`svg a[href="meta/${click}"] title`).textContent()) || '';
  assert(tip.includes(click), `tooltip of ${click}: ${tip}`);
  await page.locator(`svg a[href="meta/${click}"] rect`).click();
  await page.waitForURL(new RegExp(`/meta/${click}$`), { timeout: T });
  const text = await page.locator('body').innerText();
  let meta;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw new Error(`meta page is not JSON: ${text.slice(0, 300)}`);
  }
  assert(meta.ulid === click && text.includes(click), `meta.json shows ulid ${meta.ulid}, want ${click}`);
  ok(`clicking ${click} opens its meta.json (level ${meta.compaction?.level}, ${meta.compaction?.sources?.length} sources)`);
  await shot(page, 'bucket-web-meta');
});
