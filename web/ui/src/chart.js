// Time series charts with uPlot, plus a legend of our own (uPlot's is unwieldy with
// hundreds of series): click an entry to show only that series, ctrl/cmd-click to toggle.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h, metricName } from './api.js';

export const MAX_GRAPH_SERIES = 500;

const palette = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
  '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd',
];
export const colorOf = (i) => palette[i % palette.length];

function toNum(v) {
  const f = parseFloat(v);
  return isFinite(f) ? f : null;
}

// alignMatrix puts range query results on the common step grid start..end.
export function alignMatrix(series, start, end, step) {
  const n = Math.max(1, Math.floor((end - start) / step + 1e-9) + 1);
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) xs[i] = start + i * step;
  const ys = series.map((s) => {
    const arr = new Array(n).fill(null);
    for (const [t, v] of s.values || []) {
      const i = Math.round((t - start) / step);
      if (i >= 0 && i < n) arr[i] = toNum(v);
    }
    return arr;
  });
  return { xs: Array.from(xs), ys };
}

function stack(ys) {
  const out = [];
  let acc = null;
  for (const arr of ys) {
    const cur = arr.map((v, i) => {
      const base = acc ? acc[i] ?? 0 : 0;
      return v === null ? (acc ? acc[i] : null) : base + v;
    });
    out.push(cur);
    acc = cur.map((v) => v ?? 0);
  }
  return out;
}

function fmtValue(v) {
  if (v === null || v === undefined) return '';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(+v.toFixed(4));
}

// renderChart draws the series into container and returns a destroy function.
export function renderChart(container, series, { start, end, step, stacked }) {
  const shown = series.slice(0, MAX_GRAPH_SERIES);
  const { xs, ys } = alignMatrix(shown, start, end, step);
  const plotted = stacked ? stack(ys) : ys;
  const chartEl = h('div', { class: 'chart', 'data-testid': 'chart' });
  const tooltip = h('div', { class: 'chart-tooltip', hidden: true });
  const legend = h('div', { class: 'legend', 'data-testid': 'legend' });
  container.append(chartEl, tooltip, legend);

  const width = () => Math.max(200, chartEl.clientWidth || container.clientWidth || 600);
  const opts = {
    width: width(),
    height: window.innerWidth < 600 ? 220 : 320,
    legend: { show: false },
    cursor: { focus: { prox: 16 }, drag: { x: true, y: false } },
    focus: { alpha: 0.35 },
    scales: { x: { time: true } },
    axes: [
      { stroke: '#555', grid: { stroke: '#eee' } },
      { stroke: '#555', grid: { stroke: '#eee' }, size: 60, values: (u, vals) => vals.map(fmtValue) },
    ],
    series: [
      {},
      ...shown.map((s, i) => ({
        label: metricName(s.metric),
        stroke: colorOf(i),
        width: 1.5,
        spanGaps: false,
        points: { show: false },
        fill: stacked ? colorOf(i) + '55' : undefined,
      })),
    ],
    bands: stacked ? shown.slice(1).map((_, i) => ({ series: [i + 2, i + 1] })) : undefined,
    hooks: {
      setCursor: [
        (u) => {
          const { idx, left, top } = u.cursor;
          const si = u.series.findIndex((s, i) => i > 0 && s._focus);
          if (idx === null || idx === undefined || left < 0 || si < 1) {
            tooltip.hidden = true;
            return;
          }
          const raw = ys[si - 1][idx];
          tooltip.hidden = false;
          tooltip.textContent = '';
          tooltip.append(
            h('div', { class: 'tt-time' }, new Date(xs[idx] * 1000).toISOString().replace('T', ' ').replace('.000Z', 'Z')),
            h('div', {}, h('span', { class: 'swatch', style: `background:${colorOf(si - 1)}` }), u.series[si].label),
            h('div', { class: 'tt-value' }, `value: ${raw === null ? '(none)' : raw}`),
          );
          tooltip.style.left = `${Math.min(left + 12, chartEl.clientWidth - 200)}px`;
          tooltip.style.top = `${top + 12}px`;
        },
      ],
    },
  };
  const u = new uPlot(opts, [xs, ...plotted], chartEl);

  const items = shown.map((s, i) => {
    const item = h(
      'div',
      { class: 'legend-item', title: 'Click: show only this series; Ctrl/Cmd-click: toggle it' },
      h('span', { class: 'swatch', style: `background:${colorOf(i)}` }),
      h('span', { class: 'legend-label' }, metricName(s.metric)),
    );
    item.addEventListener('click', (e) => {
      if (e.ctrlKey || e.metaKey) {
        const show = !u.series[i + 1].show;
        u.setSeries(i + 1, { show });
      } else {
        const onlyThis = u.series.every((ser, j) => j === 0 || (j === i + 1) === ser.show);
        u.batch(() => u.series.forEach((_, j) => j > 0 && u.setSeries(j, { show: onlyThis || j === i + 1 })));
      }
      items.forEach((it, j) => it.classList.toggle('legend-off', !u.series[j + 1].show));
    });
    return item;
  });
  legend.append(...items);

  const ro = new ResizeObserver(() => u.setSize({ width: width(), height: opts.height }));
  ro.observe(container);
  return () => {
    ro.disconnect();
    u.destroy();
  };
}
