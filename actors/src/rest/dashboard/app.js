// Weir's dashboard: polls the REST API (Flink's paths under /v1) and draws jobs, the job graph,
// operator rates, back-pressure and checkpoints. Plain JavaScript, no dependencies.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const svg = ['svg', 'g', 'rect', 'line', 'path', 'polyline', 'text', 'defs', 'marker', 'title'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

async function api(path, options) {
  const response = await fetch('/v1' + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.errors || [response.statusText]).join('; '));
  return body;
}

const post = (path, body) => api(path, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});

// ---- formatting -----------------------------------------------------------------------------
const fmtTime = (ms) => (ms > 0 ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '–');
function fmtMs(ms) {
  if (ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 120 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
function fmtBytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
  return `${i === 0 ? b : b.toFixed(1)} ${units[i]}`;
}
const fmtCount = (n) => Number(n).toLocaleString('en-US');
const fmtRate = (r) => (r === undefined ? '–' : r >= 100 ? fmtCount(Math.round(r)) : r.toFixed(1));
const pct = (x) => (x === undefined ? '–' : `${Math.round(Math.min(1, Math.max(0, x)) * 100)} %`);

// ---- state ----------------------------------------------------------------------------------
const state = {
  selected: null, // job id
  refreshMs: 3000,
  previous: new Map(), // job id → {at, vertices: {uid → metrics}}
  rates: new Map(), // uid → {in, out, backpressured, busy}
  alignment: new Map(), // `${job}/${checkpoint}` → max alignment ms
};

// ---- jobs -----------------------------------------------------------------------------------
function renderJobs(jobs) {
  const body = $('#jobs tbody');
  body.replaceChildren(...jobs.map((j) => {
    const running = j.tasks.running;
    const row = el('tr', { class: 'selectable' + (j.jid === state.selected ? ' selected' : ''), 'data-jid': j.jid },
      el('td', {}, j.name),
      el('td', {}, el('span', { class: `badge ${j.state}` }, j.state)),
      el('td', {}, fmtTime(j['start-time'])),
      el('td', {}, fmtMs(j.duration)),
      el('td', { class: 'num' }, `${running} / ${j.tasks.total} running`),
      el('td', {}, el('code', {}, j.jid)));
    row.addEventListener('click', () => { state.selected = j.jid; refresh(); });
    return row;
  }));
  if (!state.selected && jobs.length > 0) {
    const running = jobs.find((j) => j.state === 'RUNNING');
    state.selected = (running || jobs[jobs.length - 1]).jid;
  }
}

// ---- rates from two answers ------------------------------------------------------------------
function updateRates(details) {
  const now = details.now;
  const current = {};
  for (const v of details.vertices) current[v.id] = v.metrics;
  const prev = state.previous.get(details.jid);
  state.rates = new Map();
  if (prev && now > prev.at) {
    const secs = (now - prev.at) / 1000;
    for (const v of details.vertices) {
      const before = prev.vertices[v.id];
      if (!before) continue;
      const m = v.metrics;
      const subtaskMs = (now - prev.at) * v.parallelism;
      state.rates.set(v.id, {
        in: (m['read-records'] - before['read-records']) / secs,
        out: (m['write-records'] - before['write-records']) / secs,
        backpressured: (m['accumulated-backpressured-time'] - before['accumulated-backpressured-time']) / subtaskMs,
        busy: (m['accumulated-busy-time'] - before['accumulated-busy-time']) / subtaskMs,
      });
    }
  }
  state.previous.set(details.jid, { at: now, vertices: current });
}

// ---- job graph ------------------------------------------------------------------------------
function renderGraph(details) {
  const nodes = details.plan.nodes;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map();
  const depth = (n) => {
    if (layer.has(n.id)) return layer.get(n.id);
    layer.set(n.id, 0);
    const d = Math.max(0, ...(n.inputs || []).map((i) => depth(byId.get(i.id)) + 1));
    layer.set(n.id, d);
    return d;
  };
  nodes.forEach(depth);
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  const W = 190, H = 70, GX = 70, GY = 30, PAD = 24;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((n, y) => pos.set(n.id, { x: PAD + x * (W + GX), y: PAD + y * (H + GY) })));
  const width = PAD * 2 + columns.length * (W + GX) - GX;
  const height = PAD * 2 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'job graph' });
  svg.append(el('defs', {}, el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a94a6' }))));
  // Chains: a dashed box around the operators of each chain of more than one.
  const chains = new Map();
  for (const n of nodes) (chains.get(n.chain) || chains.set(n.chain, []).get(n.chain)).push(n);
  for (const [head, members] of chains) {
    if (members.length < 2) continue;
    const xs = members.map((m) => pos.get(m.id));
    const x0 = Math.min(...xs.map((p) => p.x)) - 8, y0 = Math.min(...xs.map((p) => p.y)) - 8;
    const x1 = Math.max(...xs.map((p) => p.x)) + W + 8, y1 = Math.max(...xs.map((p) => p.y)) + H + 8;
    svg.append(el('rect', { class: 'chain', x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 10 },
      el('title', {}, `chain of ${head}`)));
  }
  for (const n of nodes) {
    for (const input of n.inputs || []) {
      const a = pos.get(input.id), b = pos.get(n.id);
      const x0 = a.x + W, y0 = a.y + H / 2, x1 = b.x, y1 = b.y + H / 2;
      svg.append(el('path', { class: 'edge', d: `M${x0},${y0} C${x0 + GX / 2},${y0} ${x1 - GX / 2},${y1} ${x1},${y1}` }));
      svg.append(el('text', { class: 'small', x: (x0 + x1) / 2, y: (y0 + y1) / 2 - 4, 'text-anchor': 'middle' }, input.ship_strategy));
    }
  }
  const vertices = new Map(details.vertices.map((v) => [v.id, v]));
  for (const n of nodes) {
    const p = pos.get(n.id);
    const r = state.rates.get(n.id);
    const bp = r && r.backpressured > 0.1;
    const g = el('g', { class: 'node' + (bp ? ' bp' : ''), transform: `translate(${p.x},${p.y})`, 'data-uid': n.id });
    g.append(el('rect', { width: W, height: H, rx: 6 }));
    g.append(el('text', { x: 8, y: 16, 'font-weight': 600 }, `${n.description}  ×${n.parallelism}`));
    g.append(el('text', { class: 'small', x: 8, y: 31 }, `${n.operator} · ${vertices.get(n.id)?.status ?? ''}`));
    g.append(el('text', { x: 8, y: 47 }, `in ${fmtRate(r?.in)}/s · out ${fmtRate(r?.out)}/s`));
    g.append(el('text', { class: 'small', x: 8, y: 62 }, `back-pressured ${pct(r?.backpressured)} · busy ${pct(r?.busy)}`));
    svg.append(g);
  }
  $('#graph').replaceChildren(svg);
}

function renderOperators(details) {
  const chainOf = new Map(details.plan.nodes.map((n) => [n.id, n.chain]));
  $('#operators tbody').replaceChildren(...details.vertices.map((v) => {
    const r = state.rates.get(v.id);
    const m = v.metrics;
    return el('tr', { 'data-uid': v.id },
      el('td', {}, v.name === v.id ? v.id : `${v.name} (${v.id})`),
      el('td', { class: 'num' }, v.parallelism),
      el('td', {}, chainOf.get(v.id) === v.id ? 'head' : `chained to ${chainOf.get(v.id)}`),
      el('td', { class: 'num' }, fmtCount(m['read-records'])),
      el('td', { class: 'num' }, fmtCount(m['write-records'])),
      el('td', { class: 'num' }, fmtRate(r?.in)),
      el('td', { class: 'num' }, fmtRate(r?.out)),
      el('td', { class: 'num' }, pct(r?.backpressured)),
      el('td', { class: 'num' }, pct(r?.busy)));
  }));
}

// ---- checkpoints ----------------------------------------------------------------------------
async function loadAlignment(jid, details, entries) {
  // Alignment is per subtask (Flink's subtask details): fetched once per completed checkpoint.
  for (const e of entries) {
    const key = `${jid}/${e.id}`;
    if (e.status !== 'COMPLETED' || state.alignment.has(key)) continue;
    let max = 0;
    for (const v of details.vertices) {
      try {
        const t = await api(`/jobs/${jid}/checkpoints/details/${e.id}/subtasks/${encodeURIComponent(v.id)}`);
        max = Math.max(max, t.summary.alignment.duration.max);
      } catch (_) { /* left the history meanwhile */ }
    }
    state.alignment.set(key, max);
  }
}

function describe(e) {
  if (!e) return 'none';
  const kind = e.checkpoint_type === 'CHECKPOINT' ? 'checkpoint' : e.checkpoint_type.toLowerCase().replace(/_/g, ' ');
  const parts = [`#${e.id} ${kind}`, fmtTime(e.trigger_timestamp)];
  if (e.status === 'COMPLETED') parts.push(fmtMs(e.end_to_end_duration), fmtBytes(e.state_size), e.external_path || '');
  if (e.status === 'FAILED') parts.push(e.failure_message || '');
  return parts.filter(Boolean).join(' · ');
}

function renderChart(jid, history) {
  // In-progress checkpoints have no duration or size yet.
  const entries = history.filter((e) => e.status !== 'IN_PROGRESS').sort((a, b) => a.id - b.id);
  const W = 900, H = 220, L = 60, R = 70, T = 20, B = 34;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'checkpoint history' });
  if (entries.length === 0) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no checkpoints yet'));
    $('#chart').replaceChildren(svg);
    return;
  }
  const align = (e) => state.alignment.get(`${jid}/${e.id}`) ?? 0;
  const maxMs = Math.max(1, ...entries.map((e) => Math.max(e.end_to_end_duration, align(e))));
  const maxSize = Math.max(1, ...entries.map((e) => e.state_size));
  const step = (W - L - R) / entries.length;
  const yMs = (v) => T + (H - T - B) * (1 - v / maxMs);
  const ySize = (v) => T + (H - T - B) * (1 - v / maxSize);
  svg.append(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(el('text', { class: 'small', x: 4, y: T + 4 }, fmtMs(maxMs)));
  svg.append(el('text', { class: 'small', x: W - R + 4, y: T + 4 }, fmtBytes(maxSize)));
  entries.forEach((e, i) => {
    const x = L + i * step;
    const h = Math.max(1, H - B - yMs(Math.max(0, e.end_to_end_duration)));
    svg.append(el('rect', { class: 'bar' + (e.status === 'FAILED' ? ' failed' : ''), x: x + step * 0.15, y: H - B - h, width: step * 0.7, height: h },
      el('title', {}, describe(e))));
    svg.append(el('text', { class: 'small', x: x + step / 2, y: H - B + 14, 'text-anchor': 'middle' }, e.id));
  });
  const line = (cls, y) => el('polyline', { class: cls, points: entries.map((e, i) => `${L + (i + 0.5) * step},${y(e)}`).join(' ') });
  svg.append(line('size', (e) => ySize(e.state_size)));
  svg.append(line('align', (e) => yMs(align(e))));
  svg.append(el('text', { class: 'small', x: L, y: H - 6 }, 'bars: duration (left axis) · green: state size (right axis) · dashed: max alignment (left axis) · red bars: failed'));
  $('#chart').replaceChildren(svg);
}

function renderCheckpoints(jid, stats) {
  const c = stats.counts;
  $('#checkpoint-counts').replaceChildren(...[['completed', c.completed], ['failed', c.failed], ['in progress', c.in_progress], ['restored', c.restored], ['total', c.total]]
    .map(([k, v]) => el('span', { 'data-count': k.replace(' ', '_') }, el('b', {}, v), ` ${k}`)));
  $('#latest-completed').textContent = describe(stats.latest.completed);
  $('#latest-failed').textContent = describe(stats.latest.failed);
  const r = stats.latest.restored;
  $('#latest-restored').textContent = r ? `#${r.id} ${r.is_savepoint ? 'savepoint' : 'checkpoint'} · ${fmtTime(r.restore_timestamp)} · ${r.external_path}` : 'none';
  renderChart(jid, stats.history);
  $('#history tbody').replaceChildren(...stats.history.map((e) => el('tr', { 'data-checkpoint': e.id },
    el('td', { class: 'num' }, e.id),
    el('td', {}, e.checkpoint_type),
    el('td', {}, el('span', { class: `badge ${e.status}` }, e.status)),
    el('td', {}, fmtTime(e.trigger_timestamp)),
    el('td', { class: 'num' }, fmtMs(e.end_to_end_duration)),
    el('td', { class: 'num' }, fmtBytes(e.state_size)),
    el('td', { class: 'num' }, state.alignment.has(`${jid}/${e.id}`) ? fmtMs(state.alignment.get(`${jid}/${e.id}`)) : '–'),
    el('td', { class: 'num' }, `${e.num_acknowledged_subtasks} / ${e.num_subtasks}`))));
}

// ---- operations -----------------------------------------------------------------------------
function showOperation(stateName, text) {
  const s = $('#op-status');
  s.dataset.state = stateName;
  s.textContent = text;
}

async function awaitOperation(path) {
  for (;;) {
    const r = await api(path);
    if (r.status.id === 'COMPLETED') return r.operation;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function operation(label, start, statusPath, describeResult) {
  const jid = state.selected;
  const buttons = document.querySelectorAll('.actions button');
  buttons.forEach((b) => { b.disabled = true; });
  showOperation('pending', `${label}: in progress…`);
  try {
    const trigger = await start(jid);
    const result = await awaitOperation(statusPath(jid, trigger['request-id']));
    if (result && result['failure-cause']) {
      showOperation('failed', `${label} failed: ${result['failure-cause']['stack-trace']}`);
    } else {
      showOperation('completed', `${label} completed${describeResult(result)}`);
    }
  } catch (e) {
    showOperation('failed', `${label} failed: ${e.message}`);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    refresh();
  }
}

const targetDir = () => $('#savepoint-dir').value.trim() || null;

$('#btn-checkpoint').addEventListener('click', () => operation('Checkpoint',
  (jid) => post(`/jobs/${jid}/checkpoints`, { checkpointType: 'CONFIGURED' }),
  (jid, t) => `/jobs/${jid}/checkpoints/${t}`,
  (r) => `: checkpoint ${r.checkpointId}`));
$('#btn-savepoint').addEventListener('click', () => operation('Savepoint',
  (jid) => post(`/jobs/${jid}/savepoints`, { 'target-directory': targetDir(), 'cancel-job': false }),
  (jid, t) => `/jobs/${jid}/savepoints/${t}`,
  (r) => `: ${r.location}`));
$('#btn-stop').addEventListener('click', () => operation('Stop with savepoint',
  (jid) => post(`/jobs/${jid}/stop`, { targetDirectory: targetDir(), drain: false }),
  (jid, t) => `/jobs/${jid}/savepoints/${t}`,
  (r) => `: ${r.location}`));
$('#btn-cancel').addEventListener('click', async () => {
  const jid = state.selected;
  showOperation('pending', 'Cancel: requested…');
  try {
    await api(`/jobs/${jid}?mode=cancel`, { method: 'PATCH' });
    showOperation('completed', 'Cancel requested');
  } catch (e) {
    showOperation('failed', `Cancel failed: ${e.message}`);
  }
  refresh();
});

// ---- refresh loop ---------------------------------------------------------------------------
let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const overview = await api('/jobs/overview');
    renderJobs(overview.jobs);
    const jid = state.selected;
    if (jid) {
      const [details, stats] = await Promise.all([api(`/jobs/${jid}`), api(`/jobs/${jid}/checkpoints`)]);
      $('#job').hidden = false;
      $('#job-name').textContent = details.name;
      const badge = $('#job-state');
      badge.textContent = details.state;
      badge.className = `badge ${details.state}`;
      $('#job-id').textContent = details.jid;
      const ended = ['FINISHED', 'CANCELED', 'FAILED'].includes(details.state);
      document.querySelectorAll('.actions button').forEach((b) => { if (ended) b.disabled = true; });
      updateRates(details);
      renderGraph(details);
      renderOperators(details);
      await loadAlignment(jid, details, stats.history);
      renderCheckpoints(jid, stats);
    }
    $('#refreshed').textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (e) {
    $('#refreshed').textContent = `cannot reach the REST API: ${e.message}`;
  }
  timer = setTimeout(refresh, state.refreshMs);
}

api('/config').then((c) => {
  state.refreshMs = c['refresh-interval'];
  $('#version').textContent = c['flink-version'];
}).catch(() => {}).finally(refresh);
