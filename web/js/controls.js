// controls.js: the config form. config.current from the server drives every control; a user
// change goes out as a config.update merge patch and shows locally until the server answers.
//
// DESIGN: the server is the single source of truth (two tabs on one session stay in sync).
// A control the user is editing right now is not overwritten by a config.current that
// arrives meanwhile (a slider being dragged, a prompt being typed); every other control
// follows config.current at once. When the server refuses a change (an `error` message), all
// controls snap back to the last config.current and the error is shown next to the field.
// Sliders send at most one update per THROTTLE_MS while dragged and a final one on release;
// the prompt is sent on Enter or after TYPING_PAUSE_MS without typing, never per keystroke;
// numbers and text fields are sent on Enter or when the field loses focus.

const THROTTLE_MS = 120;
const TYPING_PAUSE_MS = 900;
const EDIT_GRACE_MS = 1500;

const INT_FIELDS = new Set(['inference_steps', 'target_fps', 'output_width', 'output_height', 'seed', 'distributed_world_size']);

function fmt(field, v) {
  if (typeof v !== 'number') return String(v ?? '');
  return INT_FIELDS.has(field) ? String(Math.round(v)) : v.toFixed(2);
}

export class Controls {
  /** form: the <form>; send(patch) sends a config.update and answers false when offline. */
  constructor(form, send) {
    this.form = form;
    this.send = send;
    this.current = null;
    this.editing = new Map(); // field -> performance.now() of the last local edit
    this.throttle = new Map(); // field -> {timer, last}
    this.promptTimer = null;
    this.els = new Map();
    for (const el of form.querySelectorAll('[data-field]')) this.els.set(el.dataset.field, el);
    this._bind();
  }

  _bind() {
    for (const [field, el] of this.els) {
      if (field === 'prompt') continue;
      if (el.type === 'range') {
        el.addEventListener('input', () => {
          this._mark(field);
          this._showOutput(el);
          // A field that rebuilds the backend (data-apply="release") waits for the release.
          if (el.dataset.apply !== 'release') this._throttled(field, () => this._commit(field));
        });
        el.addEventListener('change', () => this._commit(field));
      } else if (el.tagName === 'SELECT') {
        el.addEventListener('change', () => this._commit(field));
      } else {
        el.addEventListener('input', () => this._mark(field));
        el.addEventListener('change', () => this._commit(field));
        el.addEventListener('keydown', (e) => {
          if (e.key === 'Escape') this._revert(field);
        });
      }
    }
    const prompt = this.els.get('prompt');
    prompt.addEventListener('input', () => {
      this._mark('prompt');
      clearTimeout(this.promptTimer);
      this.promptTimer = setTimeout(() => this._commit('prompt'), TYPING_PAUSE_MS);
    });
    prompt.addEventListener('blur', () => {
      if (this.editing.has('prompt')) {
        clearTimeout(this.promptTimer);
        this._commit('prompt');
      }
    });
    prompt.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        clearTimeout(this.promptTimer);
        this._commit('prompt');
      } else if (e.key === 'Escape') {
        clearTimeout(this.promptTimer);
        this._revert('prompt');
      }
    });
    this.form.addEventListener('submit', (e) => e.preventDefault());
  }

  _mark(field) {
    this.editing.set(field, performance.now());
  }

  _throttled(field, fn) {
    const t = this.throttle.get(field) || { timer: null, last: 0 };
    this.throttle.set(field, t);
    const wait = THROTTLE_MS - (performance.now() - t.last);
    clearTimeout(t.timer);
    if (wait <= 0) {
      t.last = performance.now();
      fn();
    } else {
      t.timer = setTimeout(() => {
        t.last = performance.now();
        fn();
      }, wait);
    }
  }

  _showOutput(el) {
    const out = this.form.querySelector(`output[for="${el.id}"]`);
    if (out) out.value = fmt(el.dataset.field, Number(el.value));
  }

  /** The control's value in the config's type. */
  value(field) {
    const el = this.els.get(field);
    if (el.type === 'range' || el.type === 'number') {
      if (el.value.trim() === '') return NaN;
      const n = Number(el.value);
      return INT_FIELDS.has(field) ? Math.round(n) : n;
    }
    return el.value;
  }

  _commit(field) {
    if (!this.current) return;
    const v = this.value(field);
    if (typeof v === 'number' && !Number.isFinite(v)) {
      this._revert(field);
      return;
    }
    if (v === this.current[field]) {
      this.editing.delete(field);
      return;
    }
    this._mark(field);
    this.sendPatch({ [field]: v });
  }

  /** Sends a patch; offline, the controls snap back since nothing can change. */
  sendPatch(patch) {
    if (!this.send(patch)) {
      this.editing.clear();
      this.render(this.current);
    }
  }

  _revert(field) {
    this.editing.delete(field);
    if (this.current) this._set(field, this.current[field]);
  }

  /** True while the user's own edit of field must not be overwritten by config.current. */
  _busy(field) {
    if (!this.editing.has(field)) return false;
    const el = this.els.get(field);
    // An unsent or unconfirmed prompt edit survives until the server has it (or refuses it).
    if (field === 'prompt') return this.value('prompt') !== this.current?.prompt;
    if (el.tagName === 'SELECT') return false;
    if (el.type === 'range') return document.activeElement === el && performance.now() - this.editing.get(field) < EDIT_GRACE_MS;
    return document.activeElement === el; // a number or text field being typed in
  }

  _set(field, v) {
    const el = this.els.get(field);
    if (!el || v === undefined) return;
    if (el.tagName === 'SELECT' && v !== null && ![...el.options].some((o) => o.value === String(v))) {
      el.add(new Option(String(v), String(v)));
    }
    const text = v === null ? '' : (el.type === 'range' || el.type === 'number') ? fmt(field, v) : String(v);
    if (el.value !== text) el.value = text; // an equal write would still move a caret
    if (el.type === 'range') this._showOutput(el);
    el.removeAttribute('aria-invalid');
  }

  /** Shows a config object (config.current or a GET answer). */
  render(cfg) {
    if (!cfg) return;
    this.current = cfg;
    for (const field of this.els.keys()) {
      if (this._busy(field)) continue;
      this.editing.delete(field);
      this._set(field, cfg[field]);
    }
  }

  /** The server refused a change: every control shows config.current again. */
  refused(errors) {
    this.editing.clear();
    clearTimeout(this.promptTimer);
    if (this.current) this.render(this.current);
    for (const e of errors || []) {
      const el = this.els.get(e.field);
      if (el) el.setAttribute('aria-invalid', 'true');
    }
  }

  /** Lists the server's backend plugins ({id, label}) in the backend menu. */
  addBackends(list) {
    const el = this.els.get('backend');
    for (const { id, label } of list) {
      const have = [...el.options].find((o) => o.value === id);
      if (have) {
        if (id !== 'mock' && id !== 'auto') have.textContent = label;
      } else {
        el.add(new Option(label, id));
      }
    }
  }

  setEnabled(on) {
    for (const el of this.els.values()) el.disabled = !on;
  }
}
