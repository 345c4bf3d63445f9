import './style.css';
import { mountGraph } from './graph.js';
import { mountAlerts, mountRules, mountStores } from './pages.js';
import { mountReplicas } from './replicas.js';

const pages = { graph: mountGraph, stores: mountStores, rules: mountRules, alerts: mountAlerts, replicas: mountReplicas };
const titles = { graph: 'Graph', stores: 'Stores', rules: 'Rules', alerts: 'Alerts', replicas: 'Replicas' };
const app = document.getElementById('app');
let unmount = null;

function pageOf(pathname) {
  const last = pathname.replace(/\/+$/, '').split('/').pop();
  return pages[last] ? last : 'graph';
}

function render() {
  unmount?.();
  unmount = null;
  app.textContent = '';
  const page = pageOf(window.location.pathname);
  document.title = `${titles[page]} - Vigil`;
  document.querySelectorAll('nav a[data-page]').forEach((a) => a.classList.toggle('active', a.dataset.page === page));
  document.body.dataset.page = page;
  const container = document.createElement('div');
  container.className = `page page-${page}`;
  app.append(container);
  unmount = pages[page](container) || null;
}

// Client-side navigation for links marked data-route.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-route]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  document.querySelector('header nav').classList.remove('open');
  const url = new URL(a.getAttribute('href'), document.baseURI);
  if (url.pathname + url.search === window.location.pathname + window.location.search) return;
  history.pushState(null, '', url.pathname + url.search);
  render();
});
document.querySelector('.nav-toggle').addEventListener('click', () => document.querySelector('header nav').classList.toggle('open'));
window.addEventListener('popstate', render);

// "/" shows the graph page; keep the URL canonical as Prometheus does.
if (!/\/(graph|stores|rules|alerts|replicas)\/?$/.test(window.location.pathname)) {
  const base = window.location.pathname.replace(/[^/]*$/, '');
  history.replaceState(null, '', `${base}graph${window.location.search}`);
}
render();
