// ticker.js: a steady clock for the frame sender. Browsers slow timers in hidden tabs to about
// one per second, which would cut the stream to 1 fps whenever the tab is in the background;
// timers in a dedicated worker are not slowed, so the ticks come from a tiny worker (made from
// a Blob, so it is one file less to serve). Falls back to setTimeout where workers are refused.

const WORKER_SRC = `
let timer = null;
onmessage = (e) => {
  clearTimeout(timer);
  if (e.data > 0) timer = setTimeout(() => postMessage(0), e.data);
};`;

export class Ticker {
  constructor(onTick) {
    this.onTick = onTick;
    this.worker = null;
    this.timer = null;
    try {
      const url = URL.createObjectURL(new Blob([WORKER_SRC], { type: 'text/javascript' }));
      this.worker = new Worker(url);
      URL.revokeObjectURL(url);
      this.worker.onmessage = () => this.onTick();
    } catch {
      this.worker = null;
    }
  }
  /** Calls onTick once after ms milliseconds (replacing any pending tick). */
  after(ms) {
    const d = Math.max(0, Math.round(ms));
    if (this.worker) this.worker.postMessage(d || 1);
    else {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.onTick(), d);
    }
  }
  cancel() {
    if (this.worker) this.worker.postMessage(0);
    clearTimeout(this.timer);
  }
}
