// connection.js: one WebSocket to a herud session that reconnects by itself.
//
// DESIGN: the page talks to herud over a single WebSocket per tab. When it closes for any
// reason other than the user pressing Disconnect, we retry with exponential backoff (0.5 s
// doubling up to 5 s, with jitter so many tabs do not reconnect in lockstep). A socket that
// has not opened within CONNECT_TIMEOUT_MS is abandoned and retried. Every state change is
// reported through onState(state, detail) so the page can say in words what is happening.
// States: 'idle' (not wanted), 'connecting', 'open', 'waiting' (backoff before a retry).

const CONNECT_TIMEOUT_MS = 5000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;

export class Connection {
  constructor({ onState, onJson, onBinary }) {
    this.onState = onState;
    this.onJson = onJson;
    this.onBinary = onBinary;
    this.ws = null;
    this.url = null;
    this.wanted = false;
    this.attempt = 0;
    this.timer = null;
    this.state = 'idle';
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in the browser but not yet sent; 0 when closed. */
  get buffered() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  connect(url) {
    this.url = url;
    this.wanted = true;
    this.attempt = 0;
    this._dial();
  }

  disconnect() {
    this.wanted = false;
    clearTimeout(this.timer);
    this._drop(1000, 'closed by the user');
    this._set('idle', {});
  }

  /** Sends {type, payload} as JSON; false when not connected. */
  send(type, payload) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify({ type, payload }));
    return true;
  }

  sendBinary(buffer) {
    if (!this.open) return false;
    this.ws.send(buffer);
    return true;
  }

  _set(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }

  _drop(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
    try {
      ws.close(code, reason);
    } catch {
      /* already closing */
    }
  }

  _dial() {
    clearTimeout(this.timer);
    this._drop(1000, 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this._retry(`cannot open ${this.url}: ${e.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this._set('connecting', { url: this.url, attempt: this.attempt });
    this.timer = setTimeout(() => this._retry('the server did not answer in time'), CONNECT_TIMEOUT_MS);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      clearTimeout(this.timer);
      this.attempt = 0;
      this._set('open', { url: this.url });
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return; // not ours to fix; herud only sends JSON text
        }
        if (msg && typeof msg.type === 'string') this.onJson(msg.type, msg.payload ?? {});
      } else {
        this.onBinary(ev.data);
      }
    };
    ws.onclose = (ev) => {
      const why = ev.reason ? `${ev.reason} (code ${ev.code})`
        : !opened ? 'the server cannot be reached'
        : ev.code === 1006 ? 'connection lost' : `closed with code ${ev.code}`;
      this._retry(why);
    };
  }

  _retry(reason) {
    clearTimeout(this.timer);
    this._drop(1000, 'retry');
    if (!this.wanted) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    this.attempt++;
    this._set('waiting', { reason, delay, attempt: this.attempt, at: Date.now() + delay });
    this.timer = setTimeout(() => this._dial(), delay);
  }
}
