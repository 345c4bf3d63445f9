// Thin client of the querier's Prometheus-compatible HTTP API. Paths are relative to the
// document so that the UI works behind a path prefix (every page is one level deep).

export const apiBase = new URL('.', document.baseURI).pathname.replace(/\/$/, '');

// apiGet returns {ok, data, warnings, error, httpStatus}; it never throws.
export async function apiGet(path, params = {}, { method = 'GET', signal } = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') qs.append(k, String(v));
  }
  const url = `${apiBase}/api/v1/${path}`;
  let resp;
  try {
    resp =
      method === 'POST'
        ? await fetch(url, {
            method: 'POST',
            body: qs,
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            signal,
          })
        : await fetch(qs.toString() ? `${url}?${qs}` : url, { signal });
  } catch (e) {
    if (e.name === 'AbortError') return { ok: false, aborted: true, error: 'aborted' };
    return { ok: false, error: `cannot reach the querier: ${e.message}`, warnings: [] };
  }
  let body = null;
  const text = await resp.text();
  try {
    body = JSON.parse(text);
  } catch {
    const snippet = text.trim().slice(0, 300);
    return {
      ok: false,
      httpStatus: resp.status,
      error: `HTTP ${resp.status} ${resp.statusText}${snippet ? `: ${snippet}` : ''}`,
      warnings: [],
    };
  }
  const warnings = [...(body.warnings || []), ...(body.infos || [])];
  if (!resp.ok || body.status !== 'success') {
    const kind = body.errorType ? `${body.errorType}: ` : '';
    return {
      ok: false,
      httpStatus: resp.status,
      error: `${kind}${body.error || `HTTP ${resp.status} ${resp.statusText}`}`,
      warnings,
    };
  }
  return { ok: true, httpStatus: resp.status, data: body.data, warnings };
}

// Durations in Prometheus syntax: 1w2d3h4m5s6ms, or a plain number of seconds.
const units = { y: 31536000, w: 604800, d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };
export function parseDuration(s) {
  if (s === undefined || s === null) return null;
  s = String(s).trim();
  if (s === '') return null;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  const re = /(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    if (m.index !== consumed) return null;
    total += parseFloat(m[1]) * units[m[2]];
    consumed = re.lastIndex;
  }
  return consumed === s.length && consumed > 0 ? total : null;
}

export function formatDuration(sec) {
  if (!isFinite(sec) || sec <= 0) return '0s';
  let ms = Math.round(sec * 1000);
  const parts = [];
  for (const [u, n] of [['w', 604800000], ['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000], ['ms', 1]]) {
    if (ms >= n) {
      parts.push(`${Math.floor(ms / n)}${u}`);
      ms %= n;
    }
  }
  return parts.join('');
}

// Formats a Unix time in seconds as "YYYY-MM-DD HH:MM:SS" UTC (the end_input format).
export function formatTime(sec) {
  return new Date(sec * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

// Parses "YYYY-MM-DD HH:MM[:SS]" (UTC), RFC 3339 or a Unix timestamp; null if invalid.
export function parseTime(s) {
  if (!s) return null;
  s = String(s).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  let iso = s.replace(' ', 'T');
  if (!/[zZ]|[+-]\d\d:?\d\d$/.test(iso)) iso += 'Z';
  const t = Date.parse(iso);
  return isNaN(t) ? null : t / 1000;
}

export function metricName(metric) {
  const name = metric.__name__ || '';
  const labels = Object.entries(metric)
    .filter(([k]) => k !== '__name__')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${labels.join(', ')}}`;
}

export function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// h builds a DOM element: h('div', {class: 'x', onclick: f}, child, 'text', ...).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function alertBox(kind, title, messages) {
  const list = Array.isArray(messages) ? messages : [messages];
  return h(
    'div',
    { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('strong', {}, title),
    list.length === 1 ? h('span', {}, ' ', list[0]) : h('ul', {}, list.map((m) => h('li', {}, m))),
  );
}
