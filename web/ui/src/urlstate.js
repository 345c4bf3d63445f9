// Panel state <-> URL query parameters, with the names Prometheus and Thanos use
// (g0.expr, g0.tab, g0.range_input, g0.end_input, g0.moment_input, g0.step_input,
// g0.stacked, g0.deduplicate, g0.partial_response, g0.max_source_resolution), so that
// links from either (alert generatorURLs among them) open here.

export const resolutions = [
  { value: '0s', label: 'Raw data only' },
  { value: '5m', label: 'Max 5m downsampling' },
  { value: '1h', label: 'Max 1h downsampling' },
  { value: 'auto', label: 'Auto downsampling' },
];

export function defaultPanel() {
  return {
    expr: '',
    tab: 'graph',
    range: '1h',
    endInput: '',
    stepInput: '',
    stacked: false,
    dedup: true,
    partial: true,
    maxRes: '0s',
  };
}

function bool(v, dflt) {
  if (v === null || v === undefined || v === '') return dflt;
  return !['0', 'false', 'no', 'off'].includes(String(v).toLowerCase());
}

function normRes(v) {
  if (!v) return '0s';
  v = String(v).toLowerCase();
  if (v === 'raw' || v === '0' || v === '0s') return '0s';
  if (v === '5m' || v === '300s' || v === '300') return '5m';
  if (v === '1h' || v === '3600s' || v === '3600' || v === '60m') return '1h';
  if (v === 'auto') return 'auto';
  return '0s';
}

export function parsePanels(search) {
  const params = new URLSearchParams(search);
  const idx = new Set();
  for (const k of params.keys()) {
    const m = /^g(\d+)\./.exec(k);
    if (m) idx.add(Number(m[1]));
  }
  const panels = [];
  for (const i of [...idx].sort((a, b) => a - b)) {
    const g = (name) => params.get(`g${i}.${name}`);
    const p = defaultPanel();
    p.expr = g('expr') ?? '';
    const tab = (g('tab') ?? '').toLowerCase();
    p.tab = tab === '1' || tab === 'table' || tab === 'console' ? 'table' : 'graph';
    if (g('range_input')) p.range = g('range_input');
    p.endInput = g('end_input') || g('moment_input') || '';
    p.stepInput = g('step_input') || '';
    p.stacked = bool(g('stacked'), false);
    p.dedup = bool(g('deduplicate') ?? g('dedup'), true);
    p.partial = bool(g('partial_response'), true);
    p.maxRes = normRes(g('max_source_resolution'));
    panels.push(p);
  }
  return panels;
}

export function encodePanels(panels) {
  const params = new URLSearchParams();
  panels.forEach((p, i) => {
    const s = (k, v) => params.set(`g${i}.${k}`, v);
    s('expr', p.expr);
    s('tab', p.tab === 'table' ? '1' : '0');
    s('stacked', p.stacked ? '1' : '0');
    s('range_input', p.range);
    if (p.endInput) s('end_input', p.endInput);
    if (p.stepInput) s('step_input', p.stepInput);
    s('deduplicate', p.dedup ? '1' : '0');
    s('partial_response', p.partial ? '1' : '0');
    s('max_source_resolution', p.maxRes);
  });
  return params.toString();
}
