// record.js: recording the output canvas (MediaRecorder) and PNG snapshots, as downloads.

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Offers blob as a download named name through the given <a> (kept visible as a link). */
export function offer(link, blob, name, label) {
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.textContent = label;
  link.hidden = false;
  link.click();
}

export function snapshot(canvas, link) {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => {
      if (!blob) return reject(new Error('the output canvas is empty'));
      offer(link, blob, `heru-${stamp()}.png`, 'Download snapshot');
      resolve(blob);
    }, 'image/png');
  });
}

const TYPES = ['video/webm;codecs=vp9', 'video/webm;codecs=vp8', 'video/webm', 'video/mp4'];

export class Recorder {
  constructor(canvas, link, onChange) {
    this.canvas = canvas;
    this.link = link;
    this.onChange = onChange;
    this.rec = null;
    this.started = 0;
  }
  get supported() {
    return typeof MediaRecorder !== 'undefined' && typeof this.canvas.captureStream === 'function';
  }
  get on() {
    return this.rec !== null;
  }
  start(fps) {
    if (!this.supported) throw new Error('this browser cannot record a canvas');
    const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || '';
    const stream = this.canvas.captureStream(Math.max(5, Math.min(60, fps || 30)));
    const rec = new MediaRecorder(stream, mimeType ? { mimeType, videoBitsPerSecond: 6e6 } : {});
    const chunks = [];
    rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    rec.onstop = () => {
      for (const t of stream.getTracks()) t.stop();
      const type = rec.mimeType || mimeType || 'video/webm';
      const ext = type.includes('mp4') ? 'mp4' : 'webm';
      if (chunks.length) offer(this.link, new Blob(chunks, { type }), `heru-${stamp()}.${ext}`, 'Download recording');
      this.rec = null;
      this.onChange();
    };
    rec.start(1000);
    this.rec = rec;
    this.started = performance.now();
    this.onChange();
  }
  stop() {
    if (this.rec && this.rec.state !== 'inactive') this.rec.stop();
  }
  elapsed() {
    const s = Math.floor((performance.now() - this.started) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }
}
