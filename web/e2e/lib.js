'use strict';
// Helpers of the end-to-end test: build and start postbox, read what the
// demo prints, TOTP codes as an authenticator app makes them, axe-core on
// every page, screenshots at desktop and phone width.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const repo = path.resolve(__dirname, '..', '..');

function log(...args) {
  console.log('[e2e]', ...args);
}

/* Build the binary once into a temp dir. */
function build(dir) {
  const bin = path.join(dir, 'postbox');
  log('go build ./cmd/postbox');
  execFileSync('go', ['build', '-o', bin, './cmd/postbox'], { cwd: repo, stdio: 'inherit' });
  return bin;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/* Parse the demo's printed logins, second factors and Einmal-PIN. */
function parseDemo(out) {
  const demo = { logins: {}, totp: {}, pin: null, kvnr: null, kasse: null };
  const kasse = out.match(/\(Kasse "([^"]+)"\)/);
  if (kasse) { demo.kasse = kasse[1]; }
  for (const line of out.split('\n')) {
    const m = line.match(/^\s{2}\S.*?\s{2,}(\w+)\s+(\S+)\s*$/);
    if (m && m[1] !== 'Benutzer') { demo.logins[m[1]] = m[2]; }
    const t = line.match(/^- (\w+): (otpauth:\/\/\S+)/);
    if (t) { demo.totp[t[1]] = new URL(t[2]).searchParams.get('secret'); }
    const p = line.match(/KVNR (\w+)\): ([A-Z0-9-]+) /);
    if (p) { demo.kvnr = p[1]; demo.pin = p[2]; }
    const r = line.match(/^Registrierung zum Ausprobieren: .*KVNR (\w+), E-Mail (\S+) /);
    if (r) { demo.newcomer = { kvnr: r[1], email: r[2] }; }
  }
  return demo;
}

/* Start `postbox serve --demo` and wait until it listens. */
async function start(bin, dir, env) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const data = path.join(dir, 'data');
  const args = ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--data-dir', data, '--base-url', base,
    '--event-ship-interval', '200ms',
    // Notifications to one person are spaced by this window; short here,
    // so the reply's mail arrives during the test instead of 15 min later.
    '--mail-coalesce-window', '2s'];
  const child = spawn(bin, args, { env: env || process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`postbox exited with ${child.exitCode}:\n${err.slice(-3000)}`);
    }
    if (/"msg":"postbox listening"/.test(err)) { break; }
    if (Date.now() > deadline) { throw new Error('postbox did not start within 60 s:\n' + err.slice(-3000)); }
    await new Promise((r) => setTimeout(r, 100));
  }
  const demo = parseDemo(out);
  for (const want of ['erika', 'sachb', 'leitung', 'pruefer']) {
    if (!demo.logins[want] || !demo.totp[want]) { throw new Error(`demo output lacks the login of ${want}:\n${out}`); }
  }
  if (!demo.pin) { throw new Error('demo output lacks the Einmal-PIN:\n' + out); }
  if (!demo.newcomer) { throw new Error('demo output lacks the person to register:\n' + out); }
  return {
    base, demo, data, child, startedAt: Date.now(),
    logs: () => err,
    stop: async () => {
      if (child.exitCode === null) { child.kill('SIGTERM'); }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
      if (child.exitCode === null) { child.kill('SIGKILL'); }
    }
  };
}

/* RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret. */
function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) { throw new Error('bad base32'); }
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) { bytes.push(parseInt(bits.slice(i, i + 8), 2)); }
  return Buffer.from(bytes);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', base32(secret)).update(counter).digest();
  const off = h[h.length - 1] & 0xf;
  const n = (h.readUInt32BE(off) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, '0');
}

const usedSteps = {};
/* A code for the current time step that this account has not used yet
   (the server refuses a replayed step), waiting for the next step if needed. */
async function freshTOTP(user, secret) {
  for (;;) {
    const step = Math.floor(Date.now() / 1000 / 30);
    if (!usedSteps[user] || step > usedSteps[user]) {
      usedSteps[user] = step;
      return totp(secret, step);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/* axe-core on the current page; every violation fails the run. The pages'
   CSP forbids inline script, so addScriptTag (an inline <script>) would be
   blocked; evaluating the source through the DevTools protocol is not
   subject to the page's CSP, which stays active for everything else. */
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const axeResults = [];
async function axe(page, name) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!has) { await page.evaluate(axeSource); }
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  axeResults.push({ page: name, url: page.url(), violations: res.length });
  if (res.length > 0) {
    throw new Error(`axe-core found ${res.length} violation(s) on ${name} (${page.url()}):\n` + JSON.stringify(res, null, 2));
  }
}

const shotDir = path.join(__dirname, 'screenshots');
/* Screenshots at 1280 px (desktop) and 360 px (phone) width, full page. */
async function screenshots(page, name) {
  fs.mkdirSync(shotDir, { recursive: true });
  const size = page.viewportSize();
  for (const [label, width, height] of [['desktop', 1280, 900], ['phone', 360, 740]]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(50);
    // Nothing may stick out sideways on a phone.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    if (overflow > 1) {
      const culprits = await page.evaluate((w) => Array.from(document.querySelectorAll('body *'))
        .filter((e) => e.getBoundingClientRect().right > w + 1 && !(e.parentElement && e.parentElement.closest('.table-wrap')))
        .slice(0, 5).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ').join('.') : '')), width);
      throw new Error(`${name}: the page is ${overflow} px wider than a ${width} px screen (${culprits.join(', ')})`);
    }
    await page.screenshot({ path: path.join(shotDir, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(size);
}

/* Visit a page: check axe and take screenshots if asked. */
async function check(page, name, opts) {
  await axe(page, name);
  if (opts && opts.shots) { await screenshots(page, name); }
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/* A PDF-looking file of n bytes (the server checks the magic number). */
function pdfFile(dir, name, n, seed) {
  const file = path.join(dir, name);
  const buf = Buffer.alloc(n);
  buf.write('%PDF-1.7\n', 0, 'latin1');
  crypto.createHash('sha256').update(String(seed)).digest().copy(buf, 9);
  for (let i = 41; i < n; i++) { buf[i] = (i * 31 + seed) & 0xff; }
  fs.writeFileSync(file, buf);
  return file;
}

const tmpdirs = [];
function tmpdir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'postbox-e2e-'));
  tmpdirs.push(d);
  return d;
}

/* Remove the run's temp dirs (kept when a run fails, for the logs). */
function cleanup() {
  for (const d of tmpdirs) { fs.rmSync(d, { recursive: true, force: true }); }
}

module.exports = { log, build, start, totp, freshTOTP, axe, axeResults, screenshots, check, sha256, pdfFile, tmpdir, cleanup, repo };
