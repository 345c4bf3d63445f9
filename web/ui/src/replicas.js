// The Replicas view: for a series selector, query each replica's raw data (dedup=false)
// and the deduplicated series (dedup=true) over a range, draw every replica's coverage as
// a timeline and mark the gaps that deduplication filled from another replica.
import { apiGet, alertBox, formatDuration, h, metricName, parseDuration, parseTime } from './api.js';
import { createEditor } from './editor.js';

const MAX_GROUPS = 50;
const SVG_NS = 'http://www.w3.org/2000/svg';
const selectorRe = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{[\s\S]*\})?\s*$/;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

const present = (arr, i) => arr && arr[i] !== null && arr[i] > 0;

function toGrid(values, start, step, n) {
  const arr = new Array(n).fill(null);
  for (const [t, v] of values || []) {
    const i = Math.round((t - start) / step);
    if (i >= 0 && i < n) arr[i] = parseFloat(v);
  }
  return arr;
}

// runs splits 0..n-1 into maximal runs of equal class.
function runs(n, cls) {
  const out = [];
  let cur = null;
  for (let i = 0; i < n; i++) {
    const c = cls(i);
    if (cur && cur.c === c) cur.end = i;
    else out.push((cur = { c, start: i, end: i }));
  }
  return out;
}

function timeline(row, n, start, step) {
  const W = 1000, H = 20;
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'timeline', preserveAspectRatio: 'none', role: 'img', 'aria-label': row.name });
  const x = (i) => (W * i) / n;
  for (const r of runs(n, row.cls)) {
    const rect = svg('rect', { x: x(r.start), y: 0, width: Math.max(0.5, x(r.end + 1) - x(r.start)), height: H, class: `seg seg-${r.c}` });
    const from = new Date((start + r.start * step) * 1000).toISOString();
    const to = new Date((start + r.end * step) * 1000).toISOString();
    rect.append(svg('title', {}, document.createTextNode(`${row.name}: ${r.c} ${from} – ${to}`)));
    el.append(rect);
  }
  return el;
}

const isoShort = (sec) => new Date(sec * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');

export function mountReplicas(container) {
  const params = new URLSearchParams(window.location.search);
  const st = { selector: params.get('selector') || '', range: params.get('range') || '1h', end: params.get('end') || '', step: params.get('step') || '' };
  const sync = () => {
    const qs = new URLSearchParams(Object.entries(st).filter(([, v]) => v));
    history.replaceState(null, '', `${window.location.pathname}?${qs}`);
  };
  const editorEl = h('div', { class: 'editor' });
  const rangeIn = h('input', { name: 'range', value: st.range, size: 5, 'aria-label': 'Range' });
  const endIn = h('input', { name: 'end', value: st.end, size: 19, placeholder: 'End (UTC, default now)', 'aria-label': 'End time' });
  const stepIn = h('input', { name: 'step', value: st.step, size: 7, placeholder: 'Step (auto)', 'aria-label': 'Step' });
  const run = h('button', { class: 'btn btn-primary', type: 'button', onclick: () => execute() }, 'Show replicas');
  const out = h('div', { class: 'replicas-out' });
  container.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Replicas')),
    h('p', { class: 'hint' }, 'Enter a series selector, e.g. up{job="node"}. Each replica is queried without deduplication and the result is compared with the deduplicated series: ',
      h('span', { class: 'key seg-present' }, 'sample present'), ' ', h('span', { class: 'key seg-filled' }, 'gap filled from another replica'), ' ', h('span', { class: 'key seg-missing' }, 'gap in every replica')),
    h('section', { class: 'panel' },
      h('div', { class: 'expr-row' }, editorEl, run),
      h('div', { class: 'graph-controls' }, h('span', { class: 'group' }, 'Range ', rangeIn), h('span', { class: 'group' }, endIn), h('span', { class: 'group' }, stepIn))),
    out,
  );
  const editor = createEditor(editorEl, { doc: st.selector, onExecute: () => execute(), onChange: (v) => (st.selector = v) });

  async function execute() {
    st.selector = editor.state.doc.toString().trim();
    st.range = rangeIn.value.trim();
    st.end = endIn.value.trim();
    st.step = stepIn.value.trim();
    sync();
    out.textContent = '';
    const m = selectorRe.exec(st.selector);
    if (!st.selector || !m || (!m[1] && !m[2])) {
      out.append(alertBox('error', 'Error:', 'enter a series selector such as up{job="node"} (functions and operators are not supported here).'));
      return;
    }
    const dur = parseDuration(st.range);
    const endT = st.end ? parseTime(st.end) : Date.now() / 1000;
    if (!dur || endT === null) {
      out.append(alertBox('error', 'Error:', 'invalid range or end time.'));
      return;
    }
    // A sample is "present" at a step when the window (t-step, t] holds one, so the step
    // must be at least the scrape interval; auto picks range/300, at least 15s.
    const step = parseDuration(st.step) || Math.max(Math.ceil(dur / 300), 15);
    const end = Math.floor(endT), start = end - dur;
    const n = Math.floor(dur / step) + 1;
    const q = { query: `count_over_time(${st.selector}[${formatDuration(step)}])`, start, end, step, partial_response: 'true' };
    out.append(h('div', { class: 'placeholder' }, 'Loading…'));
    const [raw, dd] = await Promise.all([
      apiGet('query_range', { ...q, dedup: 'false' }, { method: 'POST' }),
      apiGet('query_range', { ...q, dedup: 'true' }, { method: 'POST' }),
    ]);
    out.textContent = '';
    const warnings = [...new Set([...(raw.warnings || []), ...(dd.warnings || [])])];
    if (warnings.length) out.append(alertBox('warning', 'Warning:', warnings));
    for (const r of [raw, dd]) {
      if (!r.ok) {
        out.append(alertBox('error', 'Error executing query:', r.error));
        return;
      }
    }
    const groups = dd.data.result.map((d) => ({ d, replicas: [] }));
    const unmatched = [];
    for (const r of raw.data.result) {
      const g = groups.find(({ d }) => Object.entries(d.metric).every(([k, v]) => r.metric[k] === v));
      if (g) g.replicas.push(r);
      else unmatched.push(r);
    }
    if (groups.length === 0) {
      out.append(h('div', { class: 'placeholder' }, 'Empty query result: no series match the selector in this range.'));
      return;
    }
    out.append(h('div', { class: 'panel-status' }, `${groups.length} deduplicated series from ${raw.data.result.length} replica series · step ${formatDuration(step)}`));
    if (groups.length > MAX_GROUPS) out.append(alertBox('info', 'Note:', `showing the first ${MAX_GROUPS} of ${groups.length} series; narrow the selector.`));
    for (const { d, replicas } of groups.slice(0, MAX_GROUPS)) {
      const dArr = toGrid(d.values, start, step, n);
      const blocks = [];
      for (const r of replicas) {
        const extra = Object.entries(r.metric).filter(([k]) => !(k in d.metric)).map(([k, v]) => `${k}="${v}"`).join(', ') || '(no replica label)';
        const arr = toGrid(r.values, start, step, n);
        const cls = (i) => (present(arr, i) ? 'present' : present(dArr, i) ? 'filled' : 'missing');
        let have = 0, filled = 0;
        for (let i = 0; i < n; i++) { if (present(arr, i)) have++; else if (present(dArr, i)) filled++; }
        blocks.push(h('div', { class: 'replica-row', 'data-testid': 'replica-row' },
          h('div', { class: 'replica-row-label' }, h('span', { class: 'mono' }, extra),
            ` — coverage ${((100 * have) / n).toFixed(1)}%, ${filled} step(s) filled by deduplication`),
          timeline({ name: extra, cls }, n, start, step)));
      }
      let dHave = 0;
      for (let i = 0; i < n; i++) if (present(dArr, i)) dHave++;
      blocks.push(h('div', { class: 'replica-row' },
        h('div', { class: 'replica-row-label' }, h('strong', {}, 'deduplicated'), ` — coverage ${((100 * dHave) / n).toFixed(1)}%`),
        timeline({ name: 'deduplicated', cls: (i) => (present(dArr, i) ? 'dedup' : 'missing') }, n, start, step)));
      out.append(h('section', { class: 'replica-group', 'data-testid': 'replica-group' },
        h('h3', { class: 'mono' }, metricName(d.metric)),
        blocks,
        h('div', { class: 'axis-row' }, h('span', {}, isoShort(start)), h('span', {}, isoShort(start + (n - 1) * step)))));
    }
    if (unmatched.length) out.append(alertBox('info', 'Note:', `${unmatched.length} replica series matched no deduplicated series.`));
  }
  if (st.selector) execute();
  return () => editor.destroy();
}
