// protocol.js: the wire formats of herud's WebSocket protocol (README "Protocol") and the
// small pure helpers around them. No DOM here, so the functions are easy to reason about.
//
// Binary frames (both directions): a 16-byte header, then the JPEG bytes.
//   offset 0  size 4  magic "HRF1" (ASCII)
//   offset 4  size 4  frame id, uint32 big-endian
//   offset 8  size 8  client timestamp in ms, float64 big-endian
// The server answers a binary frame with one carrying the same id and timestamp, so the page
// measures glass-to-glass latency as now - ts (both read from the same clock, nowMs()).

export const HEADER_BYTES = 16;
const MAGIC = [0x48, 0x52, 0x46, 0x31]; // "HRF1"

/** Milliseconds on a clock shared by every tab of this browser (epoch based, sub-ms). */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

/** Header + JPEG bytes as one ArrayBuffer ready for WebSocket.send(). */
export function packFrame(id, ts, jpeg) {
  const body = jpeg instanceof Uint8Array ? jpeg : new Uint8Array(jpeg);
  const out = new Uint8Array(HEADER_BYTES + body.byteLength);
  const view = new DataView(out.buffer);
  MAGIC.forEach((b, i) => view.setUint8(i, b));
  view.setUint32(4, id >>> 0, false);
  view.setFloat64(8, ts, false);
  out.set(body, HEADER_BYTES);
  return out.buffer;
}

/** {id, ts, jpeg} from a received binary message, or null when it is not an HRF1 frame. */
export function parseFrame(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength <= HEADER_BYTES) return null;
  const view = new DataView(buffer);
  for (let i = 0; i < 4; i++) if (view.getUint8(i) !== MAGIC[i]) return null;
  return {
    id: view.getUint32(4, false),
    ts: view.getFloat64(8, false),
    jpeg: new Uint8Array(buffer, HEADER_BYTES),
  };
}

/** Value at quantile q (0..1) of an unsorted array of numbers; NaN when empty. */
export function quantile(values, q) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export const SESSION_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Normalizes a user-given WebSocket base ("ws://host:port", "wss://host/prefix",
 * "http://host:port", "host:port") into "ws[s]://host[:port][/prefix]" without a trailing
 * slash. An empty base means the server that served this page. Throws Error on nonsense.
 */
export function normalizeWsBase(base, loc) {
  let b = (base || '').trim();
  if (!b) {
    if (loc.protocol === 'http:' || loc.protocol === 'https:')
      return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}`;
    return 'ws://127.0.0.1:8000';
  }
  if (/^https?:\/\//i.test(b)) b = b.replace(/^http/i, 'ws');
  else if (!/^wss?:\/\//i.test(b)) b = `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${b}`;
  let u;
  try {
    u = new URL(b);
  } catch {
    throw new Error(`"${base}" is not a WebSocket address; use e.g. ws://127.0.0.1:8000`);
  }
  if (u.search || u.hash) throw new Error('the WebSocket base must not carry a query or fragment');
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** {wsUrl, httpBase} for a session, from a normalized base and an optional token. */
export function endpoints(wsBase, session, token) {
  const q = token ? `?token=${encodeURIComponent(token)}` : '';
  return {
    wsUrl: `${wsBase}/ws/session/${encodeURIComponent(session)}${q}`,
    httpBase: wsBase.replace(/^ws/, 'http'),
  };
}

/** The live fields a preset may hold (README "Presets"). */
export const PRESET_FIELDS = ['prompt', 'prompt_dominance', 'pose_lock', 'depth_lock', 'seg_lock', 'motion_lock'];

const MODE_WORDS = {
  'mock': 'Running on mock',
  'core-imported': 'Wan loaded, waiting for frames',
  'core-warmup': 'Warming up Wan',
  'core-runtime-active': 'Running on Wan',
  'core-distributed-warmup': 'Warming up distributed Wan',
  'core-distributed-active': 'Running distributed Wan',
};

/** One plain sentence for a runtime_status object, e.g. "Running on mock: CUDA is required ...". */
export function describeRuntime(rs) {
  if (!rs || typeof rs !== 'object') return 'Backend state unknown';
  let words = MODE_WORDS[rs.mode] || `Mode ${rs.mode}`;
  if (rs.backend && rs.mode !== 'mock' && rs.backend !== 'mock') words += ` (${rs.backend})`;
  return rs.error ? `${words}: ${rs.error}` : words;
}
