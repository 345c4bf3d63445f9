// Stores, Rules and Alerts pages.
import { apiGet, alertBox, h } from './api.js';

function fmtTs(ms) {
  if (ms === undefined || ms === null) return '-';
  // The StoreAPI uses math.MinInt64/MaxInt64 for "unbounded".
  if (ms <= -9e15 || ms >= 9e15 || Math.abs(ms) >= 9.2e18) return ms < 0 ? '-∞' : '+∞';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!iso || isNaN(t) || t <= 0) return 'never';
  const s = Math.max(0, (Date.now() - t) / 1000);
  return s < 120 ? `${s.toFixed(1)}s ago` : s < 7200 ? `${(s / 60).toFixed(1)}m ago` : `${(s / 3600).toFixed(1)}h ago`;
}

const labelBadges = (labels) =>
  h('span', { class: 'labels' }, Object.entries(labels || {}).sort().map(([k, v]) => h('span', { class: 'badge' }, `${k}="${v}"`)));

function loading(container, what) {
  container.textContent = '';
  const el = h('div', { class: 'placeholder' }, `Loading ${what}…`);
  container.append(el);
  return el;
}

function refreshButton(fn) {
  return h('button', { class: 'btn btn-sm', type: 'button', onclick: fn }, 'Refresh');
}

export function mountStores(container) {
  const load = async () => {
    const ph = loading(container, 'stores');
    const r = await apiGet('stores');
    container.textContent = '';
    container.append(h('div', { class: 'page-head' }, h('h1', {}, 'Stores'), refreshButton(load)));
    if (r.warnings?.length) container.append(alertBox('warning', 'Warning:', r.warnings));
    if (!r.ok) {
      container.append(alertBox('error', 'Error loading stores:', r.error));
      return;
    }
    ph.remove();
    const types = Object.keys(r.data || {}).sort();
    if (types.length === 0) {
      container.append(h('div', { class: 'placeholder' }, 'The querier knows no StoreAPI endpoints.'));
      return;
    }
    for (const type of types) {
      const eps = [...r.data[type]].sort((a, b) => a.name.localeCompare(b.name));
      const up = eps.filter((e) => !e.lastError).length;
      container.append(
        h('section', { class: 'store-group', 'data-testid': `store-group-${type}` },
          h('h2', {}, `${type} `, h('span', { class: 'count' }, `(${up}/${eps.length} up)`)),
          h('div', { class: 'table-wrap' },
            h('table', { class: 'data-table stores' },
              h('thead', {}, h('tr', {}, ['Endpoint', 'Status', 'Announced label sets', 'Min time (UTC)', 'Max time (UTC)', 'Last check', 'Last error'].map((c) => h('th', {}, c)))),
              h('tbody', {}, eps.map((e) =>
                h('tr', { class: e.lastError ? 'down' : 'up', 'data-testid': 'store-row' },
                  h('td', { class: 'mono' }, e.name),
                  h('td', {}, h('span', { class: `state ${e.lastError ? 'state-down' : 'state-up'}` }, e.lastError ? 'DOWN' : 'UP')),
                  h('td', {}, (e.labelSets || []).length ? (e.labelSets || []).map((ls) => h('div', {}, labelBadges(ls))) : '-'),
                  h('td', { class: 'mono' }, fmtTs(e.minTime)),
                  h('td', { class: 'mono' }, fmtTs(e.maxTime)),
                  h('td', {}, ago(e.lastCheck)),
                  h('td', { class: 'error-text' }, e.lastError || ''),
                ))))),
        ),
      );
    }
  };
  load();
}

function stateClass(s) {
  return { firing: 'state-down', pending: 'state-warn', inactive: 'state-up', ok: 'state-up', err: 'state-down', unknown: 'state-warn' }[s] || '';
}

export function mountRules(container) {
  const load = async () => {
    loading(container, 'rules');
    const r = await apiGet('rules');
    container.textContent = '';
    container.append(h('div', { class: 'page-head' }, h('h1', {}, 'Rules'), refreshButton(load)));
    if (r.warnings?.length) container.append(alertBox('warning', 'Warning:', r.warnings));
    if (!r.ok) {
      container.append(alertBox('error', 'Error loading rules:', r.error));
      return;
    }
    const groups = r.data.groups || [];
    if (groups.length === 0) container.append(h('div', { class: 'placeholder' }, 'No rule groups: no endpoint with the Rules API (ruler or sidecar with rules) is known.'));
    for (const g of groups) {
      container.append(
        h('section', { class: 'rule-group' },
          h('h2', {}, g.name, ' ', h('span', { class: 'count' }, `${g.file || ''} · interval ${g.interval ?? '-'}s · last evaluation ${ago(g.lastEvaluation)}`)),
          h('div', { class: 'table-wrap' },
            h('table', { class: 'data-table' },
              h('thead', {}, h('tr', {}, ['Rule', 'State', 'Last evaluation', 'Evaluation time', 'Error'].map((c) => h('th', {}, c)))),
              h('tbody', {}, (g.rules || []).map((rule) =>
                h('tr', {},
                  h('td', { class: 'mono' },
                    h('div', {}, `${rule.type === 'alerting' ? 'alert' : 'record'}: `, h('strong', {}, rule.name)),
                    h('div', { class: 'expr' }, h('a', { href: `graph?g0.expr=${encodeURIComponent(rule.query)}&g0.tab=1`, 'data-route': true }, rule.query)),
                    rule.duration ? h('div', {}, `for: ${rule.duration}s`) : null,
                    Object.keys(rule.labels || {}).length ? h('div', {}, 'labels: ', labelBadges(rule.labels)) : null),
                  h('td', {}, h('span', { class: `state ${stateClass(rule.health)}` }, (rule.health || '').toUpperCase()),
                    rule.type === 'alerting' ? h('div', {}, h('span', { class: `state ${stateClass(rule.state)}` }, rule.state)) : null),
                  h('td', {}, ago(rule.lastEvaluation)),
                  h('td', {}, rule.evaluationTime !== undefined ? `${(rule.evaluationTime * 1000).toFixed(2)}ms` : '-'),
                  h('td', { class: 'error-text' }, rule.lastError || ''),
                ))))),
        ),
      );
    }
  };
  load();
}

export function mountAlerts(container) {
  const load = async () => {
    loading(container, 'alerts');
    const [rules, alerts] = await Promise.all([apiGet('rules', { type: 'alert' }), apiGet('alerts')]);
    container.textContent = '';
    container.append(h('div', { class: 'page-head' }, h('h1', {}, 'Alerts'), refreshButton(load)));
    const warnings = [...(rules.warnings || []), ...(alerts.warnings || [])];
    if (warnings.length) container.append(alertBox('warning', 'Warning:', [...new Set(warnings)]));
    if (!alerts.ok) container.append(alertBox('error', 'Error loading alerts:', alerts.error));
    else {
      const list = alerts.data.alerts || [];
      container.append(h('h2', {}, `Active alerts (${list.length})`));
      if (list.length === 0) container.append(h('div', { class: 'placeholder' }, 'No alerts are pending or firing.'));
      else
        container.append(h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
          h('thead', {}, h('tr', {}, ['State', 'Labels', 'Active since', 'Value', 'Annotations'].map((c) => h('th', {}, c)))),
          h('tbody', {}, list.map((a) => h('tr', {},
            h('td', {}, h('span', { class: `state ${stateClass(a.state)}` }, a.state)),
            h('td', {}, labelBadges(a.labels)),
            h('td', {}, a.activeAt ? `${a.activeAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${ago(a.activeAt)})` : '-'),
            h('td', { class: 'mono' }, a.value ?? ''),
            h('td', {}, Object.entries(a.annotations || {}).map(([k, v]) => h('div', {}, h('strong', {}, `${k}: `), v)))))))));
    }
    if (!rules.ok) container.append(alertBox('error', 'Error loading alerting rules:', rules.error));
    else {
      const rs = (rules.data.groups || []).flatMap((g) => (g.rules || []).map((r) => ({ ...r, group: g.name })));
      container.append(h('h2', {}, `Alerting rules (${rs.length})`));
      if (rs.length === 0) container.append(h('div', { class: 'placeholder' }, 'No alerting rules.'));
      for (const r of rs) {
        container.append(h('details', { class: `alert-rule ${r.state}` },
          h('summary', {}, h('span', { class: `state ${stateClass(r.state)}` }, r.state), ' ', h('strong', {}, r.name), ` (${(r.alerts || []).length} active) · group ${r.group}`),
          h('pre', { class: 'mono' }, `alert: ${r.name}\nexpr: ${r.query}${r.duration ? `\nfor: ${r.duration}s` : ''}`),
          Object.keys(r.labels || {}).length ? h('div', {}, 'labels: ', labelBadges(r.labels)) : null,
          r.lastError ? alertBox('error', 'Error:', r.lastError) : null));
      }
    }
  };
  load();
}
