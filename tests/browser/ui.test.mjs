// tests/browser/ui.test.mjs: the web UI end to end, in headless Chromium with its fake camera,
// against a real herud on the mock backend. Run through browser-ui.sh (which installs
// playwright-core into the build tree and sets the environment below).
//
// Environment: HERUD (the herud binary), HERU_PLUGIN_DIR (holds mock.so), HERU_WEB_ROOT (web/),
// HERU_TEST_MODULES (folder whose node_modules has playwright-core), HERU_ARTIFACTS (where
// screenshots go), CHROMIUM (the browser; browser-ui.sh picks it, default /usr/bin/chromium).
//
// Each step prints "ok N - what"; the first failure prints why, saves a screenshot of the page
// as failure.png, shows the page console and the server log, and exits 1.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const env = process.env;
const require = createRequire(path.join(env.HERU_TEST_MODULES || process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const HERUD = env.HERUD;
const ARTIFACTS = env.HERU_ARTIFACTS || path.resolve('tests/artifacts');
const SESSION = 'browser-test';
const DEADLINE_MS = 120000;
const CHROME_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

const consoleLines = [];
const pageErrors = []; // uncaught exceptions in any tab: each one fails the test
let serverLog = '';
let server = null;
let context = null;
let page = null;
let step = 0;
const t0 = Date.now();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function ok(what) {
  step++;
  console.log(`ok ${step} - ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

class TestFailure extends Error {}
function check(cond, why) {
  if (!cond) throw new TestFailure(why);
}

async function until(what, fn, timeoutMs = 10000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new TestFailure(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(port, extra = []) {
  const args = ['--listen', `127.0.0.1:${port}`, '--plugin-dir', env.HERU_PLUGIN_DIR, '--web-root', env.HERU_WEB_ROOT, ...extra];
  const child = spawn(HERUD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = (d) => {
    serverLog += d.toString();
    if (serverLog.length > 200000) serverLog = serverLog.slice(-100000);
  };
  child.stdout.on('data', log);
  child.stderr.on('data', log);
  let exited = null;
  child.on('exit', (code, sig) => {
    exited = `herud exited (code ${code}, signal ${sig})`;
  });
  server = child;
  await until('herud to answer /api/health', async () => {
    if (exited) throw new TestFailure(exited);
    const r = await fetch(`http://127.0.0.1:${port}/api/health`);
    return r.ok || r.status === 401;
  }, 15000, 100);
  return child;
}

async function stopServer() {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
  // In the sanitizer build, whatever the browser made herud do must be clean.
  const san = serverLog.match(/(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^\n]*/);
  if (san) throw new TestFailure(`herud reported: ${san[0]}`);
  check(child.exitCode === 0 || child.signalCode === 'SIGTERM', `herud exited with code ${child.exitCode} (signal ${child.signalCode}) on SIGTERM`);
}

async function api(port, p) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`);
  check(r.ok, `GET ${p} answered ${r.status}`);
  return r.json();
}

const frames = (pg) => pg.evaluate(() => Number(document.getElementById('output').dataset.frames || 0));
const revision = (pg) => pg.evaluate(() => Number(document.getElementById('st-rev').dataset.revision || 0));
const connState = (pg) => pg.evaluate(() => document.getElementById('conn-state').dataset.state);

/** Mean RGB and spread of the output canvas, averaged over n frames. */
async function outputLook(pg, n = 5) {
  const acc = [0, 0, 0];
  let spread = 0;
  for (let i = 0; i < n; i++) {
    const before = await frames(pg);
    await until('a new output frame', async () => (await frames(pg)) > before, 5000, 20);
    const s = await pg.evaluate(() => {
      const c = document.getElementById('output');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const m = [0, 0, 0];
      let sq = 0;
      const px = d.length / 4;
      for (let j = 0; j < d.length; j += 4) {
        m[0] += d[j]; m[1] += d[j + 1]; m[2] += d[j + 2];
        const y = (d[j] + d[j + 1] + d[j + 2]) / 3;
        sq += y * y;
      }
      const mean = m.map((v) => v / px);
      const y = (mean[0] + mean[1] + mean[2]) / 3;
      return { mean, sd: Math.sqrt(Math.max(0, sq / px - y * y)) };
    });
    for (let k = 0; k < 3; k++) acc[k] += s.mean[k] / n;
    spread += s.sd / n;
  }
  return { mean: acc, sd: spread };
}

const colorDistance = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

/** Not blank: decodes a PNG in the page and counts distinct colors and the brightness spread. */
async function pngStats(pg, file) {
  const b64 = fs.readFileSync(file).toString('base64');
  return pg.evaluate(async (data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext('2d');
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
    const colors = new Set();
    let s = 0, sq = 0;
    for (let i = 0; i < d.length; i += 16) {
      colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
      s += y; sq += y * y;
    }
    const n = d.length / 16;
    return { width: bmp.width, height: bmp.height, colors: colors.size, sd: Math.sqrt(sq / n - (s / n) ** 2) };
  }, b64);
}

async function run() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  await startServer(port);
  ok(`herud is up on 127.0.0.1:${port}`);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'heru-chromium-'));
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROME_ARGS,
      viewport: { width: 1280, height: 720 },
      acceptDownloads: true,
    });
    await runPage(port, context);
  } finally {
    if (context) await context.close().catch(() => {});
    context = null;
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

async function runPage(port, ctx) {
  page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  ctx.on('weberror', (e) => {
    consoleLines.push(`[pageerror] ${e.error().message}`);
    pageErrors.push(e.error().message);
  });
  const url = `http://127.0.0.1:${port}/?session=${SESSION}`;
  await page.goto(url);
  check(await page.title() === 'Heru', 'the page served at / is not the Heru UI');

  // -- the seed's flow -------------------------------------------------------------------
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await until('the page to connect', async () => (await connState(page)) === 'open');
  await until('config.current', async () => (await revision(page)) > 0);
  ok('Connect: connected, config.current shown');

  await page.getByRole('button', { name: 'Start Camera', exact: true }).click();
  await until('the fake camera to play', () => page.evaluate(() => {
    const v = document.getElementById('input');
    return v.readyState >= 2 && v.videoWidth > 0;
  }));
  ok('Start Camera: the fake camera plays');

  await page.getByRole('button', { name: 'Start Stream', exact: true }).click();
  await until('processed frames to arrive', async () => (await frames(page)) >= 5, 15000);
  const s1 = await api(port, `/api/session/${SESSION}/stats`);
  await sleep(1500);
  const s2 = await api(port, `/api/session/${SESSION}/stats`);
  check(s2.frames_out > s1.frames_out, `frames_out did not grow (${s1.frames_out} -> ${s2.frames_out})`);
  const look0 = await outputLook(page);
  check(look0.sd > 3, `the output looks blank (brightness spread ${look0.sd.toFixed(1)})`);
  await until('latency numbers', () => page.evaluate(() => /p50 \d+ ms/.test(document.getElementById('st-latency').textContent)));
  ok(`Start Stream: frames arrive, frames_out ${s1.frames_out} -> ${s2.frames_out}, latency shown`);

  // -- a new prompt changes revision and the output --------------------------------------
  const cfg0 = await api(port, `/api/session/${SESSION}/config`);
  const rev0 = await revision(page);
  // mock styles by the prompt's words: a noir charcoal look turns the fake camera's green gray.
  const prompt1 = cfg0.prompt === 'a noir charcoal drawing' ? 'a psychedelic rainbow poster' : 'a noir charcoal drawing';
  const box = page.getByLabel('Prompt', { exact: true });
  await box.fill(prompt1);
  await box.press('Enter');
  await until('the new revision', async () => (await revision(page)) > rev0);
  const cfg1 = await api(port, `/api/session/${SESSION}/config`);
  check(cfg1.prompt === prompt1, `the server's prompt is ${JSON.stringify(cfg1.prompt)}`);
  check(cfg1.revision > cfg0.revision, 'the server revision did not grow');
  const look1 = await outputLook(page);
  const moved = colorDistance(look0.mean, look1.mean);
  check(moved > 2, `the output did not change with the prompt (mean color moved ${moved.toFixed(2)})`);
  ok(`prompt on Enter: revision ${cfg0.revision} -> ${cfg1.revision}, output mean color moved ${moved.toFixed(1)}`);

  // Typing without Enter: applied once after the pause, not per keystroke.
  const typed = `${prompt1}, film grain`;
  await box.focus();
  await box.press('End');
  await box.pressSequentially(', film grain', { delay: 40 });
  const revTyping = (await api(port, `/api/session/${SESSION}/config`)).revision;
  check(revTyping === cfg1.revision, `the prompt was sent while typing (revision ${cfg1.revision} -> ${revTyping})`);
  await until('the typed prompt after a pause', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === typed, 5000);
  const revPaused = (await api(port, `/api/session/${SESSION}/config`)).revision;
  check(revPaused === cfg1.revision + 1, `typing ${', film grain'.length} characters made ${revPaused - cfg1.revision} revisions, not 1`);
  await box.fill(prompt1);
  await box.press('Enter');
  await until('prompt 1 again', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt1);
  ok('prompt typed without Enter: applied once after the pause');

  // -- presets ---------------------------------------------------------------------------
  const presetA = page.locator('.preset[data-preset="A"]');
  await presetA.getByRole('button', { name: 'Save current settings as preset A' }).click();
  await until('preset A to be saved', async () => (await api(port, `/api/session/${SESSION}/config`)).A?.prompt === prompt1);
  await until('preset A summary', async () => (await page.locator('#preset-A-summary').textContent()).includes(prompt1.slice(0, 20)));
  const prompt2 = 'an oil painting of a harbor at dusk';
  await box.fill(prompt2);
  await box.press('Enter');
  await until('prompt 2 applied', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt2);
  const revBeforeApply = await revision(page);
  await presetA.getByRole('button', { name: 'Apply preset A' }).click();
  await until('preset A applied', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt1);
  await until('the prompt field to show preset A', async () => (await box.inputValue()) === prompt1);
  check((await revision(page)) > revBeforeApply, 'applying the preset did not change the revision');
  // B holds prompt 2; the crossfade slider, driven by keyboard, moves between A and B.
  await box.fill(prompt2);
  await box.press('Enter');
  await until('prompt 2 again', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt2);
  await page.locator('.preset[data-preset="B"]').getByRole('button', { name: 'Save current settings as preset B' }).click();
  await until('preset B to be saved', async () => (await api(port, `/api/session/${SESSION}/config`)).B?.prompt === prompt2);
  const fade = page.getByLabel('Crossfade A → B');
  await until('the crossfade to be enabled', () => fade.isEnabled());
  await fade.focus();
  await fade.press('End'); // the slider starts at 0: move it so Home is a change
  await fade.press('Home');
  await until('crossfade 0 to give preset A', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt1);
  await fade.press('End');
  await until('crossfade 1 to give preset B', async () => (await api(port, `/api/session/${SESSION}/config`)).prompt === prompt2);
  await until('the prompt field to follow the crossfade', async () => (await box.inputValue()) === prompt2);
  ok('presets: A saved and applied, B saved, crossfade slider moves the session from A to B');

  // -- two tabs stay in sync; keyboard drives a slider -----------------------------------
  const page2 = await ctx.newPage();
  await page2.goto(url);
  await page2.getByRole('button', { name: 'Connect', exact: true }).click();
  await until('tab 2 to connect', async () => (await connState(page2)) === 'open');
  await until('tab 2 to show the prompt', async () => (await page2.getByLabel('Prompt', { exact: true }).inputValue()) === prompt2);
  const dom0 = Number(await page.locator('#f-prompt_dominance').inputValue());
  const slider = page.getByLabel('Prompt dominance');
  await slider.focus();
  await slider.press(dom0 < 0.5 ? 'ArrowRight' : 'ArrowLeft');
  await slider.press(dom0 < 0.5 ? 'ArrowRight' : 'ArrowLeft');
  const want = Math.round((dom0 + (dom0 < 0.5 ? 0.02 : -0.02)) * 100) / 100;
  await until('the server to take the slider value', async () =>
    Math.abs((await api(port, `/api/session/${SESSION}/config`)).prompt_dominance - want) < 1e-6);
  await until('tab 2 slider to follow', async () => Math.abs(Number(await page2.locator('#f-prompt_dominance').inputValue()) - want) < 1e-6);
  const f2 = await frames(page2);
  await until('tab 2 to see the output', async () => (await frames(page2)) > f2 + 3);
  await page2.close();
  ok(`two tabs in sync: keyboard set prompt_dominance ${dom0} -> ${want}, tab 2 followed and shows the output`);

  // -- a refused change snaps back with its error ----------------------------------------
  const width0 = (await api(port, `/api/session/${SESSION}/config`)).output_width;
  const wbox = page.getByLabel('Width', { exact: true });
  await wbox.fill('0');
  await wbox.press('Enter');
  await until('the error to show', () => page.locator('#error').isVisible());
  await until('the width to snap back', async () => Number(await wbox.inputValue()) === width0);
  check((await api(port, `/api/session/${SESSION}/config`)).output_width === width0, 'a refused change changed the server config');
  const errText = (await page.locator('#error p, #error li').allTextContents()).join(' / ');
  check(/output_width/.test(errText), `the error does not name the field: ${errText}`);
  ok(`refused output_width 0: snapped back to ${width0}, error shown ("${errText.trim().slice(0, 80)}")`);

  // -- a backend that cannot load here: error shown, streaming goes on -------------------
  const health = await api(port, '/api/health');
  if (health.gpu?.present) {
    ok('wan-1.3b switch not tried: this machine has a GPU, so the backend may load');
  } else {
    const cfgNow = await api(port, `/api/session/${SESSION}/config`);
    const variant = page.getByLabel('Model', { exact: true });
    if (cfgNow.model_variant === 'wan-1.3b') {
      const r = await revision(page);
      await variant.selectOption('wan-14b');
      await until('wan-14b accepted', async () => (await revision(page)) > r);
    }
    await variant.selectOption('wan-1.3b');
    const rs = (await until('the runtime error for wan-1.3b', async () => {
      const c = await api(port, `/api/session/${SESSION}/config`);
      return c.model_variant === 'wan-1.3b' && /wan-?1\.?3b/i.test(c.runtime_status?.error || '') ? c : null;
    }, 20000)).runtime_status;
    await until('the page to show the error', async () => (await page.locator('#runtime').textContent()).includes(rs.error));
    const runtimeText = (await page.locator('#runtime').textContent()).trim();
    const fErr = await frames(page);
    const sErr = (await api(port, `/api/session/${SESSION}/stats`)).frames_out;
    await until('frames to keep coming', async () => (await frames(page)) > fErr + 5, 10000);
    check((await api(port, `/api/session/${SESSION}/stats`)).frames_out > sErr, 'frames_out stopped after the failed switch');
    ok(`wan-1.3b without a GPU: "${runtimeText}", streaming goes on`);
  }

  // -- snapshot and record ---------------------------------------------------------------
  await page.evaluate(() => document.activeElement?.blur());
  const [snap] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('p')]); // the P shortcut
  const snapFile = path.join(ARTIFACTS, 'snapshot.png');
  await snap.saveAs(snapFile);
  const snapStats = await pngStats(page, snapFile);
  check(snapStats.colors > 20, `the snapshot looks blank (${snapStats.colors} colors)`);
  await page.getByRole('button', { name: 'Record' }).click();
  await sleep(1500);
  const [rec] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /^Stop recording/ }).click()]);
  const recFile = path.join(ARTIFACTS, `recording${path.extname(rec.suggestedFilename()) || '.webm'}`);
  await rec.saveAs(recFile);
  const recSize = fs.statSync(recFile).size;
  check(recSize > 1000, `the recording is only ${recSize} bytes`);
  ok(`snapshot (P key) ${snapStats.width}x${snapStats.height} PNG and a ${recSize}-byte ${path.extname(recFile)} recording downloaded`);

  // -- the page reconnects after a server restart ----------------------------------------
  await stopServer();
  await until('the page to notice', async () => (await connState(page)) !== 'open', 10000);
  const lostText = (await page.locator('#conn-state').textContent()).trim();
  await startServer(port);
  await until('the page to reconnect', async () => (await connState(page)) === 'open', 20000);
  const fBack = await frames(page);
  await until('frames after the restart', async () => (await frames(page)) > fBack + 5, 15000);
  const s3 = await api(port, `/api/session/${SESSION}/stats`);
  check(s3.frames_out > 0, 'the restarted server produced no frames');
  ok(`server restart: "${lostText.slice(0, 70)}", reconnected and streaming again (frames_out ${s3.frames_out})`);

  // -- screenshots as artifacts, not blank -----------------------------------------------
  const shot = path.join(ARTIFACTS, 'browser-ui.png');
  await page.screenshot({ path: shot });
  const st = await pngStats(page, shot);
  check(st.colors > 50 && st.sd > 10, `the screenshot looks blank (${st.colors} colors, spread ${st.sd.toFixed(1)})`);
  await page.setViewportSize({ width: 420, height: 860 });
  await sleep(300);
  const narrow = path.join(ARTIFACTS, 'browser-ui-narrow.png');
  await page.screenshot({ path: narrow, fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `at 420 px wide the page scrolls sideways by ${overflow} px`);
  ok(`screenshots ${shot} (${st.colors} colors) and ${narrow}; no sideways scroll at 420 px`);

  // -- a server that requires a token; ?ws= and ?token= ----------------------------------
  await stopServer();
  const token = 'heru-test-token-7f3a';
  await startServer(port, ['--token', token]);
  const page3 = await ctx.newPage();
  await page3.goto(`http://127.0.0.1:${port}/?session=${SESSION}&ws=ws://127.0.0.1:${port}&token=${token}`);
  check(!page3.url().includes(token), `the token stays in the address bar: ${page3.url()}`);
  await page3.getByRole('button', { name: 'Connect', exact: true }).click();
  await until('the page with the token to connect', async () => (await connState(page3)) === 'open');
  await page3.reload();
  await page3.getByRole('button', { name: 'Connect', exact: true }).click();
  await until('the token to survive a reload', async () => (await connState(page3)) === 'open');
  await page3.close();
  const page4 = await ctx.newPage();
  await page4.goto(`http://127.0.0.1:${port}/?session=${SESSION}`);
  await page4.getByRole('button', { name: 'Connect', exact: true }).click();
  await until('the page without a token to say so', async () => /token/.test(await page4.locator('#conn-state').textContent()));
  const noToken = (await page4.locator('#conn-state').textContent()).trim();
  await page4.close();
  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  ok(`--token: ?ws= and ?token= connect (token dropped from the URL, kept over a reload); without it: "${noToken.slice(0, 60)}"`);
}

const guard = setTimeout(() => {
  console.log(`not ok - the test ran over ${DEADLINE_MS / 1000} s`);
  if (server) server.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS);

try {
  await run();
  await stopServer();
  console.log(`browser-ui: all ${step} steps passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  clearTimeout(guard);
  process.exit(0);
} catch (e) {
  console.log(`not ok ${step + 1} - ${e instanceof TestFailure ? e.message : e.stack}`);
  if (page) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png') }).catch(() => {});
    console.log(`(screenshot: ${path.join(ARTIFACTS, 'failure.png')})`);
  }
  console.log('--- page console ---');
  console.log(consoleLines.slice(-40).join('\n'));
  console.log('--- herud log (tail) ---');
  console.log(serverLog.slice(-4000));
  if (context) await context.close().catch(() => {});
  await stopServer().catch((err) => console.log(err.message));
  process.exit(1);
}
