// tests/browser/protocol.test.mjs: the page's wire helpers (web/js/protocol.js) under Node:
// HRF1 frames round-trip byte for byte, foreign bytes are refused, the WebSocket base URL
// forms users type are understood, and the quantiles used for p50/p95 are right.
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const web = process.env.HERU_WEB_ROOT || path.resolve('web');
const p = await import(pathToFileURL(path.join(web, 'js', 'protocol.js')).href);

const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
const buf = p.packFrame(0xfffffffe, 1732412345678.25, jpeg);
const b = new Uint8Array(buf);
assert.deepEqual([...b.subarray(0, 4)], [0x48, 0x52, 0x46, 0x31], 'magic HRF1');
assert.deepEqual([...b.subarray(4, 8)], [0xff, 0xff, 0xff, 0xfe], 'id is big-endian');
assert.equal(new DataView(buf).getFloat64(8, false), 1732412345678.25, 'ts is float64 big-endian');
const f = p.parseFrame(buf);
assert.equal(f.id, 0xfffffffe);
assert.equal(f.ts, 1732412345678.25);
assert.deepEqual([...f.jpeg], [...jpeg]);
assert.equal(p.parseFrame(new ArrayBuffer(16)), null, 'a header without JPEG is refused');
const bad = new Uint8Array(buf.slice(0));
bad[0] = 0x47;
assert.equal(p.parseFrame(bad.buffer), null, 'wrong magic is refused');

const loc = { protocol: 'http:', host: '127.0.0.1:8000' };
assert.equal(p.normalizeWsBase('', loc), 'ws://127.0.0.1:8000');
assert.equal(p.normalizeWsBase('', { protocol: 'https:', host: 'gpu.example:443' }), 'wss://gpu.example:443');
assert.equal(p.normalizeWsBase('ws://127.0.0.1:9000/', loc), 'ws://127.0.0.1:9000');
assert.equal(p.normalizeWsBase('http://127.0.0.1:9000', loc), 'ws://127.0.0.1:9000');
assert.equal(p.normalizeWsBase('https://gpu.example/heru/', loc), 'wss://gpu.example/heru');
assert.equal(p.normalizeWsBase('localhost:8000', loc), 'ws://localhost:8000');
assert.throws(() => p.normalizeWsBase('ws://h:1/?x=1', loc), /query/);
assert.throws(() => p.normalizeWsBase('ws://', loc), /not a WebSocket address/);
const ep = p.endpoints('wss://gpu.example/heru', 'main', 'a b&c');
assert.equal(ep.wsUrl, 'wss://gpu.example/heru/ws/session/main?token=a%20b%26c');
assert.equal(ep.httpBase, 'https://gpu.example/heru');
assert.ok(p.SESSION_RE.test('browser-test_1') && !p.SESSION_RE.test('a/b') && !p.SESSION_RE.test(''));

assert.ok(Number.isNaN(p.quantile([], 0.5)));
assert.equal(p.quantile([30, 10, 20], 0.5), 20);
assert.equal(p.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.95), 10.5);

assert.equal(p.describeRuntime({ mode: 'mock', backend: 'mock', error: 'CUDA is required for wan-1.3b', load_progress: 0 }),
  'Running on mock: CUDA is required for wan-1.3b');
assert.equal(p.describeRuntime({ mode: 'core-runtime-active', backend: 'wan13b_cuda', error: null }), 'Running on Wan (wan13b_cuda)');

console.log('ok - web/js/protocol.js: frames, addresses, quantiles, runtime words');
