// stream.js: camera capture, the frame sender and the output viewer.
//
// DESIGN: flow control. The sender ticks at the configured target_fps. On each tick it sends
// the newest camera image only when fewer than `window` frames are in flight (sent but not
// answered) and the socket has nothing queued; otherwise the tick is skipped and counted
// ("held back"). So a slow server or network never builds a backlog: latency stays bounded
// and the server always works on a recent image. An answer with id N retires every frame up
// to N (herud keeps only the newest unprocessed frame, so older ones may never be answered),
// and a frame unanswered after a timeout is given up. The window is 2 for per-frame backends
// (mock); the Wan backends consume chunks of 4 frames (5 for the first), so starving them at
// 2 would stall every chunk until the timeout: for those modes the window is one chunk + 1.
//
// The viewer decodes received JPEGs with createImageBitmap off the main thread, draws only
// frames newer than the last drawn one, and drops incoming frames while two decodes are
// pending so the display never lags behind the stream.

import { nowMs, packFrame, parseFrame, quantile } from './protocol.js';
import { Ticker } from './ticker.js';

const JPEG_QUALITY = 0.8;
const MAX_SIDE = 1920;
const LATENCY_WINDOW_MS = 5000;

/** Counts events and answers their rate over the last two seconds. */
export class RateMeter {
  constructor(spanMs = 2000) {
    this.span = spanMs;
    this.times = [];
  }
  tick(t = performance.now()) {
    this.times.push(t);
    this._trim(t);
  }
  _trim(t) {
    while (this.times.length && this.times[0] < t - this.span) this.times.shift();
  }
  rate(t = performance.now()) {
    this._trim(t);
    return this.times.length / (this.span / 1000);
  }
}

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
  }
  get on() {
    return this.stream !== null;
  }
  async start(deviceId) {
    if (!navigator.mediaDevices?.getUserMedia)
      throw new Error('this browser gives no camera access here (the page must be served over https or from localhost)');
    const video = deviceId ? { deviceId: { exact: deviceId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    this.stop();
    this.stream = stream;
    this.video.srcObject = stream;
    await this.video.play();
  }
  stop() {
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
  async devices() {
    if (!navigator.mediaDevices?.enumerateDevices) return [];
    return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  }
}

export class Sender {
  /**
   * conn: a Connection (borrowed); video: the camera <video>; settings(): {fps, width,
   * height, window} read on every tick so config changes apply at once.
   */
  constructor({ conn, video, settings }) {
    this.conn = conn;
    this.video = video;
    this.settings = settings;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    this.running = false;
    this.ticker = new Ticker(() => {
      if (!this.running) return;
      this._tick();
      this._schedule();
    });
    this.nextId = 1;
    this.inflight = new Map(); // id -> ts (ms, nowMs clock): sent, not yet answered
    this.sentLog = new Map(); // id -> ts of the last 256 frames sent, to recognize our answers
    this.encoding = false;
    this.sent = 0;
    this.heldBack = 0;
    this.lost = 0;
    this.sendRate = new RateMeter();
    this.latencies = []; // [at, ms]
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.due = performance.now();
    this._schedule();
  }

  stop() {
    this.running = false;
    this.ticker.cancel();
    this.inflight.clear();
  }

  /** Forget what was in flight (the socket was replaced). */
  reset() {
    this.inflight.clear();
  }

  _schedule() {
    if (!this.running) return;
    const period = 1000 / Math.max(1, this.settings().fps);
    this.due += period;
    const now = performance.now();
    if (this.due < now - period) this.due = now; // fell behind (background tab): do not burst
    this.ticker.after(this.due - now);
  }

  _expire(now) {
    const limit = Math.max(1500, 3 * (this.p95() || 0));
    for (const [id, ts] of this.inflight) {
      if (now - ts > limit) {
        this.inflight.delete(id);
        this.lost++;
      }
    }
  }

  _tick() {
    const v = this.video;
    if (!this.conn.open || v.readyState < 2 || !v.videoWidth) return;
    const s = this.settings();
    this._expire(nowMs());
    if (this.encoding || this.inflight.size >= s.window || this.conn.buffered > 0) {
      this.heldBack++;
      return;
    }
    // Center-crop the camera image to the output aspect and scale it to the output size.
    let w = Math.min(MAX_SIDE, Math.max(16, s.width | 0));
    let h = Math.min(MAX_SIDE, Math.max(16, s.height | 0));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const scale = Math.max(w / v.videoWidth, h / v.videoHeight);
    const sw = w / scale, sh = h / scale;
    const ts = nowMs();
    this.ctx.drawImage(v, (v.videoWidth - sw) / 2, (v.videoHeight - sh) / 2, sw, sh, 0, 0, w, h);
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    this.encoding = true;
    this.canvas.toBlob(async (blob) => {
      try {
        if (!blob || !this.running) return;
        const jpeg = await blob.arrayBuffer();
        if (!this.running) return;
        if (this.conn.sendBinary(packFrame(id, ts, jpeg))) {
          this.inflight.set(id, ts);
          this.sentLog.set(id, ts);
          if (this.sentLog.size > 256) this.sentLog.delete(this.sentLog.keys().next().value);
          this.sent++;
          this.sendRate.tick();
        }
      } finally {
        this.encoding = false;
      }
    }, 'image/jpeg', JPEG_QUALITY);
  }

  /**
   * A processed frame arrived. When it answers one of ours (same id and timestamp; another
   * tab of the session numbers its frames too), it and every older frame are no longer in flight.
   */
  answered(id, ts) {
    if (this.sentLog.get(id) !== ts) return;
    for (const k of this.inflight.keys()) if (k <= id) this.inflight.delete(k);
  }

  /** A processed frame was drawn: when it answers one of ours, record glass-to-glass latency. */
  displayed(id, ts) {
    if (this.sentLog.get(id) !== ts) return false;
    this.sentLog.delete(id);
    const now = nowMs();
    this.latencies.push([now, now - ts]);
    return true;
  }

  _recent() {
    const cut = nowMs() - LATENCY_WINDOW_MS;
    while (this.latencies.length && this.latencies[0][0] < cut) this.latencies.shift();
    return this.latencies.map((x) => x[1]);
  }
  p50() {
    return quantile(this._recent(), 0.5);
  }
  p95() {
    return quantile(this._recent(), 0.95);
  }
}

export class Viewer {
  /** canvas: the output <canvas>; onFrame({id, ts, width, height}) after each draw. */
  constructor(canvas, onFrame) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.onFrame = onFrame;
    this.seq = 0;
    this.drawnSeq = 0;
    this.pending = 0;
    this.shown = 0;
    this.skipped = 0;
    this.bad = 0;
    this.rate = new RateMeter();
  }

  /** A binary message from the socket. Returns the parsed header or null. */
  binary(buffer) {
    const f = parseFrame(buffer);
    if (!f) {
      this.bad++;
      return null;
    }
    this._decode(new Blob([f.jpeg], { type: 'image/jpeg' }), f.id, f.ts);
    return f;
  }

  /** A frame.processed JSON payload (data URL or bare base64). */
  json(p) {
    if (typeof p.image !== 'string') return;
    const b64 = p.image.replace(/^data:[^,]*,/, '');
    let bytes;
    try {
      bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    } catch {
      this.bad++;
      return;
    }
    this._decode(new Blob([bytes], { type: 'image/jpeg' }), p.id, p.ts);
  }

  _decode(blob, id, ts) {
    if (this.pending >= 2) {
      this.skipped++;
      return;
    }
    const seq = ++this.seq;
    this.pending++;
    createImageBitmap(blob)
      .then((bmp) => {
        if (seq < this.drawnSeq) {
          this.skipped++;
          bmp.close();
          return;
        }
        this.drawnSeq = seq;
        if (this.canvas.width !== bmp.width || this.canvas.height !== bmp.height) {
          this.canvas.width = bmp.width;
          this.canvas.height = bmp.height;
        }
        this.ctx.drawImage(bmp, 0, 0);
        bmp.close();
        this.shown++;
        this.rate.tick();
        this.onFrame({ id, ts, width: this.canvas.width, height: this.canvas.height });
      })
      .catch(() => {
        this.bad++;
      })
      .finally(() => {
        this.pending--;
      });
  }
}
