// The Graph page: query panels with a PromQL editor, Graph and Table tabs, and the
// Thanos query options (deduplication, partial response, max source resolution).
import { apiGet, alertBox, escapeHTML, formatDuration, h, metricName, parseDuration, parseTime } from './api.js';
import { createEditor } from './editor.js';
import { renderChart, MAX_GRAPH_SERIES } from './chart.js';
import { defaultPanel, encodePanels, parsePanels, resolutions } from './urlstate.js';

export const MAX_TABLE_ROWS = 1000;
const rangeSteps = ['1m', '5m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '2d', '1w', '2w', '4w', '8w', '24w', '1y'];

let panels = [];
let root;

function syncURL() {
  const qs = encodePanels(panels.map((p) => p.state));
  const url = `${window.location.pathname}?${qs}`;
  if (url !== window.location.pathname + window.location.search) history.replaceState(null, '', url);
}

export function mountGraph(container) {
  root = container;
  panels.forEach((p) => p.destroy());
  panels = [];
  const states = parsePanels(window.location.search);
  if (states.length === 0) states.push(defaultPanel());
  const list = h('div', { class: 'panels' });
  const add = h('button', { class: 'btn', type: 'button', onclick: () => addPanel(list, defaultPanel(), true) }, 'Add panel');
  container.append(list, h('div', { class: 'add-panel' }, add));
  states.forEach((s) => addPanel(list, s, false));
  syncURL();
  return () => {
    panels.forEach((p) => p.destroy());
    panels = [];
  };
}

function addPanel(list, state, focus) {
  const p = new Panel(state, () => {
    p.destroy();
    p.el.remove();
    panels = panels.filter((x) => x !== p);
    syncURL();
  });
  panels.push(p);
  list.append(p.el);
  if (focus) p.editor.focus();
  syncURL();
  if (state.expr.trim()) p.execute();
}

class Panel {
  constructor(state, onRemove) {
    this.state = { ...state };
    this.abort = null;
    this.destroyChart = null;
    const s = this.state;

    const editorEl = h('div', { class: 'editor' });
    this.executeBtn = h('button', { class: 'btn btn-primary', type: 'button', onclick: () => this.execute() }, 'Execute');
    const removeBtn = h('button', { class: 'btn btn-remove', type: 'button', title: 'Remove panel', 'aria-label': 'Remove panel', onclick: onRemove }, '×');

    const check = (name, label, key) =>
      h(
        'label',
        { class: 'check' },
        h('input', {
          type: 'checkbox',
          name,
          checked: s[key],
          onchange: (e) => {
            s[key] = e.target.checked;
            this.changed();
          },
        }),
        ' ',
        label,
      );
    const resSelect = h(
      'select',
      {
        name: 'max_source_resolution',
        'aria-label': 'Max source resolution',
        onchange: (e) => {
          s.maxRes = e.target.value;
          this.changed();
        },
      },
      resolutions.map((r) => h('option', { value: r.value, selected: r.value === s.maxRes }, r.label)),
    );
    const options = h('div', { class: 'query-options' },
      check('dedup', 'Use deduplication', 'dedup'),
      check('partial_response', 'Use partial response', 'partial'),
      resSelect,
    );

    this.tabGraph = h('button', { type: 'button', class: 'tab', role: 'tab', onclick: () => this.setTab('graph') }, 'Graph');
    this.tabTable = h('button', { type: 'button', class: 'tab', role: 'tab', onclick: () => this.setTab('table') }, 'Table');

    // Graph controls: range, end time, step, stacked.
    this.rangeInput = h('input', { class: 'range-input', name: 'range_input', value: s.range, size: 5, 'aria-label': 'Range',
      onchange: (e) => { if (parseDuration(e.target.value)) { s.range = e.target.value.trim(); this.changed(); } else e.target.value = s.range; } });
    const rangeMinus = h('button', { type: 'button', class: 'btn btn-sm', title: 'Shorter range', onclick: () => this.stepRange(-1) }, '−');
    const rangePlus = h('button', { type: 'button', class: 'btn btn-sm', title: 'Longer range', onclick: () => this.stepRange(1) }, '+');
    this.endInput = h('input', { class: 'end-input', name: 'end_input', value: s.endInput, placeholder: 'End (UTC, default now)', size: 19,
      'aria-label': 'End time',
      onchange: (e) => {
        const v = e.target.value.trim();
        if (v === '' || parseTime(v) !== null) { s.endInput = v; this.changed(); } else e.target.value = s.endInput;
      } });
    const endNow = h('button', { type: 'button', class: 'btn btn-sm', title: 'Reset end time to now', onclick: () => { s.endInput = ''; this.endInput.value = ''; this.changed(); } }, 'now');
    this.stepInput = h('input', { class: 'step-input', name: 'step_input', value: s.stepInput, placeholder: 'Res. (s)', size: 7, 'aria-label': 'Resolution step',
      onchange: (e) => { const v = e.target.value.trim(); if (v === '' || parseDuration(v)) { s.stepInput = v; this.changed(); } else e.target.value = s.stepInput; } });
    this.stackedInput = h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'stacked', checked: s.stacked,
      onchange: (e) => { s.stacked = e.target.checked; this.changed(); } }), ' stacked');
    this.graphControls = h('div', { class: 'graph-controls' },
      h('span', { class: 'group' }, rangeMinus, this.rangeInput, rangePlus),
      h('span', { class: 'group' }, this.endInput, endNow),
      h('span', { class: 'group' }, this.stepInput),
      this.stackedInput);

    this.status = h('div', { class: 'panel-status' });
    this.messages = h('div', { class: 'panel-messages' });
    this.body = h('div', { class: 'panel-body' });

    this.el = h('section', { class: 'panel', 'data-testid': 'panel' },
      h('div', { class: 'expr-row' }, editorEl, this.executeBtn, removeBtn),
      options,
      h('div', { class: 'tabs', role: 'tablist' }, this.tabGraph, this.tabTable),
      this.graphControls,
      this.messages,
      this.body,
      this.status);
    this.editor = createEditor(editorEl, {
      doc: s.expr,
      onExecute: () => this.execute(),
      onChange: (v) => { s.expr = v; },
    });
    this.renderTabs();
    this.showInfo('Enter an expression and press Execute.');
  }

  destroy() {
    this.abort?.abort();
    this.destroyChart?.();
    this.destroyChart = null;
    this.editor.destroy();
  }

  renderTabs() {
    const g = this.state.tab === 'graph';
    this.tabGraph.classList.toggle('active', g);
    this.tabTable.classList.toggle('active', !g);
    this.tabGraph.setAttribute('aria-selected', String(g));
    this.tabTable.setAttribute('aria-selected', String(!g));
    this.graphControls.hidden = false;
    this.stackedInput.hidden = !g;
    this.rangeInput.parentElement.hidden = !g;
    this.stepInput.parentElement.hidden = !g;
    this.endInput.placeholder = g ? 'End (UTC, default now)' : 'Eval time (UTC, default now)';
  }

  setTab(tab) {
    if (this.state.tab === tab) return;
    this.state.tab = tab;
    this.renderTabs();
    this.changed();
  }

  stepRange(dir) {
    const cur = parseDuration(this.state.range) || 3600;
    const secs = rangeSteps.map(parseDuration);
    let next;
    if (dir > 0) next = rangeSteps[secs.findIndex((x) => x > cur)] ?? rangeSteps[rangeSteps.length - 1];
    else next = [...rangeSteps].reverse()[[...secs].reverse().findIndex((x) => x < cur)] ?? rangeSteps[0];
    this.state.range = next;
    this.rangeInput.value = next;
    this.changed();
  }

  changed() {
    syncURL();
    if (this.state.expr.trim()) this.execute();
  }

  clear() {
    this.destroyChart?.();
    this.destroyChart = null;
    this.body.textContent = '';
    this.messages.textContent = '';
    this.status.textContent = '';
  }

  showInfo(msg) {
    this.body.textContent = '';
    this.body.append(h('div', { class: 'placeholder' }, msg));
  }

  async execute() {
    const s = this.state;
    s.expr = this.editor.state.doc.toString();
    syncURL();
    this.abort?.abort();
    const ctrl = new AbortController();
    this.abort = ctrl;
    if (!s.expr.trim()) {
      this.clear();
      this.messages.append(alertBox('error', 'Error:', 'enter an expression to execute.'));
      return;
    }
    const common = {
      query: s.expr,
      dedup: String(s.dedup),
      partial_response: String(s.partial),
      max_source_resolution: s.maxRes,
    };
    const endSec = s.endInput ? parseTime(s.endInput) : Date.now() / 1000;
    let params;
    let path;
    let range;
    if (s.tab === 'graph') {
      const dur = parseDuration(s.range) || 3600;
      const end = Math.floor(endSec);
      const start = end - dur;
      const step = parseDuration(s.stepInput) || Math.max(Math.floor(dur / 250), 1);
      range = { start, end, step };
      path = 'query_range';
      params = { ...common, start, end, step };
    } else {
      path = 'query';
      params = { ...common, time: endSec };
    }
    this.executeBtn.disabled = true;
    this.el.classList.add('loading');
    const t0 = performance.now();
    const r = await apiGet(path, params, { method: 'POST', signal: ctrl.signal });
    if (r.aborted || this.abort !== ctrl) return;
    this.executeBtn.disabled = false;
    this.el.classList.remove('loading');
    const ms = Math.round(performance.now() - t0);
    this.clear();
    if (r.warnings?.length) this.messages.append(alertBox('warning', 'Warning:', r.warnings));
    if (!r.ok) {
      this.messages.append(alertBox('error', 'Error executing query:', r.error));
      this.showInfo('No data: the query failed.');
      return;
    }
    const data = r.data;
    const n = Array.isArray(data.result) ? data.result.length : 1;
    this.status.textContent = `Load time: ${ms}ms${range ? ` · Resolution: ${formatDuration(range.step)}` : ''} · Result series: ${n}`;
    if (s.tab === 'graph') this.renderGraph(data, range);
    else this.renderTable(data);
  }

  renderGraph(data, range) {
    if (data.resultType !== 'matrix') {
      this.messages.append(alertBox('error', 'Error:', `cannot graph a result of type ${data.resultType}; use the Table tab.`));
      return;
    }
    if (data.result.length === 0) {
      this.showInfo('Empty query result.');
      return;
    }
    if (data.result.length > MAX_GRAPH_SERIES) {
      this.messages.append(alertBox('info', 'Note:', `showing the first ${MAX_GRAPH_SERIES} of ${data.result.length} series; refine the query to see the rest.`));
    }
    if (data.result.some((r) => r.histograms)) {
      this.messages.append(alertBox('info', 'Note:', 'native histogram samples are not graphed; use the Table tab.'));
    }
    this.destroyChart = renderChart(this.body, data.result, { ...range, stacked: this.state.stacked });
  }

  renderTable(data) {
    const { resultType, result } = data;
    if (resultType === 'scalar' || resultType === 'string') {
      this.body.innerHTML = `<table class="data-table" data-testid="table"><tbody><tr><td>${resultType}</td><td class="value">${escapeHTML(result[1])}</td></tr></tbody></table>`;
      return;
    }
    if (result.length === 0) {
      this.showInfo('Empty query result.');
      return;
    }
    if (result.length > MAX_TABLE_ROWS) {
      this.messages.append(alertBox('info', 'Note:', `showing the first ${MAX_TABLE_ROWS} of ${result.length} series; refine the query to see the rest.`));
    }
    // Built as one HTML string: far faster than per-node DOM calls for large results.
    const rows = [];
    for (const r of result.slice(0, MAX_TABLE_ROWS)) {
      let val;
      if (resultType === 'vector') {
        val = r.value ? escapeHTML(r.value[1]) : r.histogram ? 'native histogram' : '';
      } else {
        val = (r.values || []).map(([t, v]) => `${escapeHTML(v)} @${t}`).join('<br>');
        if (r.histograms) val += `${val ? '<br>' : ''}${r.histograms.length} native histogram samples`;
      }
      rows.push(`<tr><td class="metric">${escapeHTML(metricName(r.metric))}</td><td class="value">${val}</td></tr>`);
    }
    this.body.innerHTML = `<div class="table-wrap"><table class="data-table" data-testid="table"><tbody>${rows.join('')}</tbody></table></div>`;
  }
}

