// app.js: the Heru page. Wires the connection, camera, sender, viewer, controls and status.
//
// DESIGN: one WebSocket per tab to /ws/session/{id} (README "Protocol"). Everything the page
// shows about the server comes from what the server sends: config.current drives the
// controls and the runtime line, `stats` the server numbers, binary HRF1 frames the output.
// The page's own numbers (send/receive rates, glass-to-glass latency, frames held back) come
// from the sender and viewer. Query parameters: ?ws= (WebSocket base, e.g. through an SSH
// tunnel), ?token=, ?session=, ?autoconnect=1.

import { Connection } from './connection.js';
import { Controls } from './controls.js';
import { describeRuntime, endpoints, normalizeWsBase, PRESET_FIELDS, SESSION_RE } from './protocol.js';
import { Recorder, snapshot } from './record.js';
import { Camera, Sender, Viewer } from './stream.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// ---- connection settings: query parameter > stored value > this server -------------------
const settings = {
  ws: params.get('ws') ?? localStorage.getItem('heru.ws') ?? '',
  token: params.get('token') ?? sessionStorage.getItem('heru.token') ?? '',
  session: params.get('session') ?? localStorage.getItem('heru.session') ?? 'main',
};
if (params.has('token')) {
  // Keep the token out of the address bar and history; it survives reloads of this tab.
  sessionStorage.setItem('heru.token', settings.token);
  params.delete('token');
  const q = params.toString();
  history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}${location.hash}`);
}

const ui = {
  connect: $('btn-connect'), camera: $('btn-camera'), stream: $('btn-stream'),
  connState: $('conn-state'), runtime: $('runtime'), load: $('load'), error: $('error'),
  video: $('input'), output: $('output'), outputScreen: $('output-screen'),
  inputPh: $('input-placeholder'), outputPh: $('output-placeholder'), outputSize: $('output-size'),
  fullscreen: $('btn-fullscreen'), snapshot: $('btn-snapshot'), record: $('btn-record'), download: $('download'),
  crossfade: $('crossfade'), sizePreset: $('size-preset'), seed: $('btn-seed'),
  wsBase: $('ws-base'), token: $('token'), session: $('session'), applyConn: $('btn-apply-conn'),
  cameraDevice: $('camera-device'), serverInfo: $('server-info'),
  st: {
    send: $('st-send'), recv: $('st-recv'), latency: $('st-latency'),
    server: $('st-server'), drops: $('st-drops'), rev: $('st-rev'),
  },
};

let cfg = null; // last config.current (the server's truth)
let stats = null; // last `stats` payload
let connDetail = {};
let streaming = false;
let errorTimer = null;
let httpBase = '';

// ---- errors and status ------------------------------------------------------------------
function showError(message, errors) {
  const el = ui.error;
  el.textContent = '';
  const p = document.createElement('p');
  p.textContent = message;
  el.append(p);
  // The field errors, unless the sentence already says each of them.
  const lines = (errors || []).map((e) => (e.field ? `${e.field}: ${e.reason}` : String(e.reason ?? e)));
  if (lines.some((l) => !message.includes(l))) {
    const ul = document.createElement('ul');
    for (const l of lines) {
      const li = document.createElement('li');
      li.textContent = l;
      ul.append(li);
    }
    el.append(ul);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'dismiss';
  close.textContent = 'Dismiss';
  close.addEventListener('click', clearError);
  el.append(close);
  el.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(clearError, 15000);
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function cameraError(e) {
  const name = e?.name || '';
  if (name === 'NotAllowedError') return 'Camera access was denied; allow it in the browser\'s site settings and try again.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No camera was found.';
  if (name === 'NotReadableError') return 'The camera is in use by another program.';
  return `The camera could not start: ${e?.message || e}`;
}

function renderRuntime() {
  if (!cfg) {
    ui.runtime.textContent = conn.open ? 'Waiting for the server…'
      : conn.state === 'idle' ? 'Not connected. Press Connect, or Start Stream to connect and start the camera at once.'
      : 'Not connected';
    ui.runtime.dataset.mode = '';
    ui.load.hidden = true;
    return;
  }
  const rs = cfg.runtime_status || {};
  let text = describeRuntime(rs);
  const p = Number(rs.load_progress);
  const loading = !rs.error && Number.isFinite(p) && p > 0 && p < 1;
  if (loading) text += ` · loading ${Math.round(p * 100)}%`;
  ui.runtime.textContent = text;
  ui.runtime.dataset.mode = rs.mode || '';
  ui.runtime.classList.toggle('warn', Boolean(rs.error));
  ui.load.hidden = !loading;
  if (loading) ui.load.value = p;
}

function renderConn() {
  const s = conn.state;
  const host = (() => {
    try {
      return new URL(connDetail.url || conn.url).host;
    } catch {
      return '';
    }
  })();
  let text;
  if (s === 'idle') text = 'Disconnected';
  else if (s === 'connecting') text = connDetail.attempt ? `Reconnecting to ${host}…` : `Connecting to ${host}…`;
  else if (s === 'open') text = `Connected to ${host} · session ${settings.session}`;
  else {
    const left = Math.max(0, Math.ceil((connDetail.at - Date.now()) / 1000));
    text = `Disconnected: ${connDetail.reason}. Reconnecting in ${left} s (attempt ${connDetail.attempt})`;
  }
  ui.connState.textContent = text;
  ui.connState.dataset.state = s;
  ui.connect.textContent = s === 'idle' ? 'Connect' : 'Disconnect';
}

function renderButtons() {
  ui.camera.textContent = camera.on ? 'Stop Camera' : 'Start Camera';
  ui.stream.textContent = streaming ? 'Stop Stream' : 'Start Stream';
  ui.stream.setAttribute('aria-pressed', String(streaming));
  ui.camera.setAttribute('aria-pressed', String(camera.on));
  ui.inputPh.hidden = camera.on;
  const haveFrame = viewer.shown > 0;
  ui.outputPh.hidden = haveFrame;
  ui.snapshot.disabled = !haveFrame;
  ui.record.disabled = !haveFrame || !recorder.supported;
  ui.record.textContent = recorder.on ? `Stop recording (${recorder.elapsed()})` : 'Record';
  ui.record.setAttribute('aria-pressed', String(recorder.on));
}

const fmtMs = (v) => (Number.isFinite(v) ? `${Math.round(v)} ms` : '–');
const fmtFps = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} fps` : '–');

function renderStats() {
  const live = conn.open;
  ui.st.send.textContent = streaming && camera.on
    ? `${fmtFps(sender.sendRate.rate())} of ${cfg?.target_fps ?? '?'}` : 'not streaming';
  ui.st.recv.textContent = live ? fmtFps(viewer.rate.rate()) : '–';
  const p50 = sender.p50(), p95 = sender.p95();
  ui.st.latency.textContent = Number.isFinite(p50) ? `p50 ${fmtMs(p50)} · p95 ${fmtMs(p95)}` : '–';
  if (live && stats) {
    const n = stats.clients ?? 0;
    const num = (v) => (Number.isFinite(v) ? v.toFixed(1) : '–');
    ui.st.server.textContent = `in ${num(stats.fps_in)} · out ${num(stats.fps_out)} fps · ${n} ${n === 1 ? 'tab' : 'tabs'}`;
    ui.st.server.title = `${stats.frames_in ?? 0} frames in, ${stats.frames_out ?? 0} out; `
      + `server latency p50 ${fmtMs(stats.p50_ms)}, p95 ${fmtMs(stats.p95_ms)}`;
  } else {
    ui.st.server.textContent = '–';
  }
  const lost = sender.lost ? ` · ${sender.lost} unanswered` : '';
  ui.st.drops.textContent = live || sender.sent
    ? `${stats?.frames_dropped ?? 0} by server · ${sender.heldBack} held back here${lost}` : '–';
  ui.st.rev.textContent = cfg ? `revision ${cfg.revision}` : '–';
  ui.st.rev.dataset.revision = cfg ? String(cfg.revision) : '';
  ui.output.dataset.frames = String(viewer.shown);
  if (conn.state === 'waiting') renderConn();
  renderButtons();
}

function presetSummary(p) {
  if (!p) return 'Empty';
  const parts = [];
  if (typeof p.prompt === 'string') parts.push(`“${p.prompt.length > 60 ? `${p.prompt.slice(0, 57)}…` : p.prompt}”`);
  if (typeof p.prompt_dominance === 'number') parts.push(`dominance ${p.prompt_dominance.toFixed(2)}`);
  const locks = ['pose', 'depth', 'seg', 'motion']
    .filter((k) => typeof p[`${k}_lock`] === 'number' && p[`${k}_lock`] > 0)
    .map((k) => `${k} ${p[`${k}_lock`].toFixed(2)}`);
  if (locks.length) parts.push(`locks: ${locks.join(', ')}`);
  return parts.join(' · ') || 'Set';
}

function renderPresets() {
  for (const name of ['A', 'B']) {
    const p = cfg?.[name] ?? null;
    const box = document.querySelector(`.preset[data-preset="${name}"]`);
    $(`preset-${name}-summary`).textContent = presetSummary(p);
    box.querySelector('[data-action="apply"]').disabled = !p || !conn.open;
    box.querySelector('[data-action="clear"]').disabled = !p || !conn.open;
    box.querySelector('[data-action="save"]').disabled = !conn.open;
    box.classList.toggle('set', Boolean(p));
  }
  ui.crossfade.disabled = !(cfg?.A && cfg?.B && conn.open);
  if (!(cfg?.A && cfg?.B) && ui.crossfade.value !== '0') {
    ui.crossfade.value = '0'; // a crossfade needs both presets; start over when one is gone
    ui.crossfade.nextElementSibling.value = '0.00';
  }
}

function renderSizePreset() {
  if (!cfg) return;
  const key = `${cfg.output_width}x${cfg.output_height}`;
  ui.sizePreset.value = [...ui.sizePreset.options].some((o) => o.value === key) ? key : 'custom';
  ui.outputSize.textContent = `${cfg.output_width} × ${cfg.output_height}`;
  document.documentElement.style.setProperty('--aspect', `${cfg.output_width} / ${cfg.output_height}`);
}

function applyConfig(c) {
  const first = !cfg;
  const newer = !cfg || c.revision !== cfg.revision;
  cfg = c;
  controls.render(c);
  renderRuntime();
  renderPresets();
  renderSizePreset();
  renderStats();
  if (newer && !first && !ui.error.hidden && !c.runtime_status?.error) clearError();
}

// ---- connection -------------------------------------------------------------------------
async function fetchJson(path) {
  const headers = settings.token ? { Authorization: `Bearer ${settings.token}` } : {};
  const r = await fetch(`${httpBase}${path}`, { headers, cache: 'no-store' });
  if (!r.ok) throw Object.assign(new Error(`HTTP ${r.status}`), { status: r.status });
  return r.json();
}

async function loadServerInfo() {
  let gpus = null;
  try {
    const h = await fetchJson('/api/health');
    gpus = h.gpu?.present ? h.gpu.count : 0;
    const gpu = gpus ? `${gpus} GPU${gpus === 1 ? '' : 's'}` : 'no GPU';
    ui.serverInfo.textContent = `herud ${h.version ?? ''} · ${gpu} · plugins: ${(h.plugins || []).join(', ') || 'none'}`;
  } catch {
    ui.serverInfo.textContent = '';
  }
  try {
    const p = await fetchJson('/api/plugins');
    controls.addBackends((p.plugins || []).filter((x) => x.kind === 'backend').map((x) => {
      const noGpu = gpus === 0 && (x.flags || []).includes('needs_gpu') ? ' (needs a GPU)' : '';
      return { id: x.id, label: `${x.id}: ${x.name || x.id}${noGpu}` };
    }));
  } catch {
    /* the backend menu keeps auto and mock */
  }
}

/** After a failed connection, ask over HTTP whether the token is the problem. */
async function diagnose() {
  try {
    await fetchJson('/api/health');
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      connDetail.reason = settings.token ? 'the server refused the token' : 'the server needs a token (see Connection and camera)';
      renderConn();
    }
  }
}

const conn = new Connection({
  onState(state, detail) {
    const wasOpen = connDetail.state === 'open';
    connDetail = { ...detail, state };
    if (state === 'open') {
      sender.reset();
      loadServerInfo();
    } else if (state === 'waiting') {
      stats = null;
      if (!wasOpen) diagnose();
    } else if (state === 'idle') {
      stats = null;
    }
    controls.setEnabled(state === 'open');
    ui.sizePreset.disabled = ui.seed.disabled = state !== 'open';
    renderConn();
    renderRuntime();
    renderPresets();
    renderStats();
  },
  onJson(type, payload) {
    if (type === 'config.current') applyConfig(payload);
    else if (type === 'stats') stats = payload;
    else if (type === 'error') {
      controls.refused(payload.errors);
      showError(payload.message || 'The server refused the request.', payload.errors);
    } else if (type === 'frame.processed') viewer.json(payload);
  },
  onBinary(buffer) {
    const f = viewer.binary(buffer);
    if (f) sender.answered(f.id, f.ts);
  },
});

function startConnection() {
  let base;
  try {
    base = normalizeWsBase(settings.ws, location);
  } catch (e) {
    showError(e.message);
    return false;
  }
  if (!SESSION_RE.test(settings.session)) {
    showError(`Session "${settings.session}" is not valid: use 1 to 64 letters, digits, "_" or "-".`);
    return false;
  }
  const ep = endpoints(base, settings.session, settings.token);
  httpBase = ep.httpBase;
  cfg = null;
  conn.connect(ep.wsUrl);
  return true;
}

// ---- the pieces -------------------------------------------------------------------------
const camera = new Camera(ui.video);
const sender = new Sender({
  conn,
  video: ui.video,
  settings: () => ({
    fps: cfg?.target_fps ?? 15,
    width: cfg?.output_width ?? 512,
    height: cfg?.output_height ?? 512,
    window: String(cfg?.runtime_status?.mode || 'mock').startsWith('core') ? 5 : 2,
  }),
});
const viewer = new Viewer(ui.output, (f) => {
  sender.displayed(f.id, f.ts);
  if (viewer.shown === 1) renderButtons();
});
const controls = new Controls($('controls'), (patch) => conn.send('config.update', patch));
controls.setEnabled(false);
ui.sizePreset.disabled = ui.seed.disabled = true;
const recorder = new Recorder(ui.output, ui.download, renderButtons);

async function startCamera() {
  try {
    await camera.start(ui.cameraDevice.value || undefined);
    await listCameras();
    return true;
  } catch (e) {
    showError(cameraError(e));
    return false;
  } finally {
    renderButtons();
  }
}

async function listCameras() {
  const devs = await camera.devices();
  const sel = ui.cameraDevice;
  const keep = sel.value;
  while (sel.options.length > 1) sel.remove(1);
  devs.forEach((d, i) => sel.add(new Option(d.label || `Camera ${i + 1}`, d.deviceId)));
  sel.value = [...sel.options].some((o) => o.value === keep) ? keep : '';
}

// ---- events -----------------------------------------------------------------------------
ui.connect.addEventListener('click', () => {
  if (conn.state === 'idle') startConnection();
  else conn.disconnect();
});

ui.camera.addEventListener('click', async () => {
  if (camera.on) {
    if (streaming) {
      streaming = false;
      sender.stop();
    }
    camera.stop();
    renderButtons();
  } else {
    await startCamera();
  }
});

ui.stream.addEventListener('click', async () => {
  if (streaming) {
    streaming = false;
    sender.stop();
    renderButtons();
    return;
  }
  if (conn.state === 'idle' && !startConnection()) return;
  if (!camera.on && !(await startCamera())) return;
  streaming = true;
  sender.start();
  renderButtons();
});

ui.fullscreen.addEventListener('click', toggleFullscreen);
ui.output.addEventListener('dblclick', toggleFullscreen);
function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else ui.outputScreen.requestFullscreen?.().catch((e) => showError(`Fullscreen was refused: ${e.message}`));
}
document.addEventListener('fullscreenchange', () => {
  ui.fullscreen.textContent = document.fullscreenElement ? 'Exit fullscreen' : 'Fullscreen';
});

ui.snapshot.addEventListener('click', () => snapshot(ui.output, ui.download).catch((e) => showError(e.message)));
ui.record.addEventListener('click', () => {
  try {
    if (recorder.on) recorder.stop();
    else recorder.start(cfg?.target_fps);
  } catch (e) {
    showError(`Recording could not start: ${e.message}`);
  }
});

for (const box of document.querySelectorAll('.preset')) {
  const name = box.dataset.preset;
  box.addEventListener('click', (e) => {
    const action = e.target.closest('button')?.dataset.action;
    if (!action || !cfg) return;
    if (action === 'save') {
      const p = {};
      for (const f of PRESET_FIELDS) p[f] = controls.value(f);
      controls.sendPatch({ [name]: p });
    } else if (action === 'apply') {
      conn.send('preset.apply', { preset: name });
    } else if (action === 'clear') {
      controls.sendPatch({ [name]: null });
    }
  });
}

let fadeTimer = null;
let fadeLast = 0;
ui.crossfade.addEventListener('input', () => {
  const m = Number(ui.crossfade.value);
  ui.crossfade.nextElementSibling.value = m.toFixed(2);
  clearTimeout(fadeTimer);
  const go = () => {
    fadeLast = performance.now();
    conn.send('preset.apply', { mix: Number(ui.crossfade.value) });
  };
  const wait = 120 - (performance.now() - fadeLast);
  if (wait <= 0) go();
  else fadeTimer = setTimeout(go, wait);
});

ui.sizePreset.addEventListener('change', () => {
  const v = ui.sizePreset.value;
  if (v === 'custom') {
    $('f-output_width').focus();
    return;
  }
  const [w, h] = v.split('x').map(Number);
  controls.sendPatch({ output_width: w, output_height: h });
});

ui.seed.addEventListener('click', () => controls.sendPatch({ seed: Math.floor(Math.random() * 2 ** 31) }));

ui.cameraDevice.addEventListener('change', () => {
  if (camera.on) startCamera();
});

ui.wsBase.value = settings.ws;
ui.token.value = settings.token;
ui.session.value = settings.session;
ui.applyConn.addEventListener('click', () => {
  const ws = ui.wsBase.value.trim();
  const session = ui.session.value.trim() || 'main';
  try {
    normalizeWsBase(ws, location);
  } catch (e) {
    showError(e.message);
    return;
  }
  if (!SESSION_RE.test(session)) {
    showError(`Session "${session}" is not valid: use 1 to 64 letters, digits, "_" or "-".`);
    return;
  }
  settings.ws = ws;
  settings.token = ui.token.value;
  settings.session = session;
  localStorage.setItem('heru.ws', ws);
  localStorage.setItem('heru.session', session);
  sessionStorage.setItem('heru.token', settings.token);
  clearError();
  startConnection();
});

// Shortcuts for the output, when no text field has the keyboard: F fullscreen, P snapshot,
// R record. Buttons announce them through aria-keyshortcuts.
const SHORTCUTS = { f: ui.fullscreen, p: ui.snapshot, r: ui.record };
for (const [k, b] of Object.entries(SHORTCUTS)) b.setAttribute('aria-keyshortcuts', k.toUpperCase());
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  const b = SHORTCUTS[e.key.toLowerCase()];
  if (b && !b.disabled) {
    e.preventDefault();
    b.click();
  }
});

setInterval(renderStats, 500);
renderConn();
renderRuntime();
renderPresets();
renderButtons();
renderStats();
if (params.get('autoconnect') === '1') startConnection();

// For debugging from the console and for the browser tests.
window.heru = { conn, camera, sender, viewer, controls, recorder, get config() { return cfg; }, get stats() { return stats; } };
