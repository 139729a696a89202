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
//     attachment, moves the Vorgang on; the team lead sets and ends a
//     legal hold on the thread
//   → (server mode) maildev received one content-free mail
//   → the insured person logs in with password + TOTP, reads the reply,
//     downloads the attachment, sees the Vorgang's timeline
//   → a person without an account registers (mTAN, e-mail link) and logs
//     in the first time with the Freischaltcode from the letter
//   → the auditor finds the events.
// Screenshots of the main pages at 1280 and 360 px go to screenshots/.
//
// POSTBOX_E2E_SERVER=1 runs it against the real services as well (env from
// /var/tmp/postbox-services/env).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { chromium } = require('playwright-core');
const lib = require('./lib');
const { log, check } = lib;

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

async function journey(bin, label, env) {
  const dir = lib.tmpdir();
  const run = Math.random().toString(36).slice(2, 8);
  const subject = `AU-Bescheinigung <Mai> ${run}`;
  const startedAt = Date.now();
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
  const newContext = () => browser.newContext({ baseURL: base, locale: 'de-DE', viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const watch = (page) => page.on('pageerror', (e) => { throw new Error('script error on ' + page.url() + ': ' + e.message); });
  try {
    // ---- The caseworker logs in and issues an Einmal-PIN. ----
    const cwCtx = await newContext();
    const cw = await cwCtx.newPage();
    watch(cw);
    await cw.goto('/');
    assert.equal(await cw.locator('html').getAttribute('lang'), 'de');
    await check(cw, 'start', { shots });
    // Pages outside the journey get axe-core too.
    for (const [p, name] of [[`/registrierung?kasse=${demo.kasse}`, 'registrierung'], [`/passwort/vergessen?kasse=${demo.kasse}`, 'passwort-vergessen'],
      ['/barrierefreiheit', 'barrierefreiheit'], ['/gibt-es-nicht', 'fehler-404'],
      // The pages the mailed links open (a made-up token: the form is shown, the token is checked on POST).
      ['/registrierung/bestaetigen?token=e2e-unbekannt', 'email-bestaetigen'], [`/passwort/neu?kasse=${demo.kasse}`, 'passwort-neu'],
      ['/einladung?token=e2e-unbekannt', 'einladung'], ['/konto/email/bestaetigen?token=e2e-unbekannt', 'email-aendern-bestaetigen']]) {
      await cw.goto(p);
      await check(cw, name);
    }
    await cw.goto(`/registrierung?kasse=${demo.kasse}`);
    await cw.getByRole('button', { name: 'Registrieren' }).click();
    await cw.locator('.error-summary').waitFor();
    assert.ok(await cw.locator('.error-summary li').count() >= 5, 'the registration names each missing field');
    await check(cw, 'registrierung-fehler');
    await login(cw, 'sachb', demo, shots);
    await cw.waitForURL(/\/team$/);
    await check(cw, 'team-postfach-leer');
    // The team inbox's other pages: a new thread to an insured person and
    // the failed notifications (none in the demo).
    for (const [p, name] of [['/team/neue-nachricht', 'team-neue-nachricht'], ['/team/benachrichtigungen', 'team-benachrichtigungen'],
      ['/team/konten', 'team-konten']]) {
      assert.equal((await cw.goto(p)).status(), 200, p);
      await check(cw, name);
    }
    await cw.goto('/team');

    await cw.getByRole('link', { name: 'Einmal-PIN' }).click();
    await check(cw, 'team-einmal-pin');
    await cw.getByLabel('Krankenversichertennummer').fill(demo.kvnr);
    await cw.getByLabel('Anliegen').selectOption('krankengeld');
    await cw.getByLabel('Welche Unterlagen benötigen Sie?').fill('Bitte senden Sie uns Ihre Arbeitsunfähigkeitsbescheinigung und den Befund.');
    await cw.getByRole('button', { name: 'PIN und Brief erstellen' }).click();
    const [letter] = await Promise.all([cw.waitForEvent('download'), cw.getByRole('link', { name: 'Brief herunterladen (PDF)' }).click()]);
    const letterPath = path.join(dir, 'brief.pdf');
    await letter.saveAs(letterPath);
    await check(cw, 'team-einmal-pin-erstellt', { shots });
    const letterText = execFileSync('pdftotext', ['-layout', letterPath, '-'], { encoding: 'utf8' });
    const pinMatch = letterText.match(/\b([A-Z2-9]{5}-[A-Z2-9]{5}-[A-Z2-9]{5})\b/);
    assert.ok(pinMatch, 'the letter carries the PIN:\n' + letterText);
    const pin = pinMatch[1];
    log('PIN from the letter:', pin.slice(0, 2) + '…');

    // ---- The insured person uploads with the PIN from the letter. ----
    // She is logged in with her account in the same browser: the PIN pages
    // act as the PIN session only, with its own CSRF token.
    const pinCtx = await newContext();
    const page = await pinCtx.newPage();
    watch(page);
    await login(page, 'erika', demo, false);
    await page.waitForURL(/\/postfach$/);
    await page.goto(`/einmal-pin/${demo.kasse}`);
    await check(page, 'pin-eingabe', { shots });
    await page.getByLabel('Krankenversichertennummer').fill(demo.kvnr);
    await page.getByLabel('Einmal-PIN').fill('ABCDE-FGHJK-MNPQR');
    await page.getByRole('button', { name: 'Anmelden' }).click();
    await page.locator('.error-summary').waitFor();
    assert.match(await page.locator('.error-summary').innerText(), /Sie haben noch 4 Versuche/);
    await check(page, 'pin-fehler', { shots });
    await page.getByLabel('Einmal-PIN').fill(pin.toLowerCase());
    await page.getByRole('button', { name: 'Anmelden' }).click();
    await page.waitForURL(/\/hochladen$/);
    assert.match(await page.locator('main').innerText(), /Arbeitsunfähigkeitsbescheinigung und den Befund/);

    // Pause and resume by keyboard-reachable buttons, then remove the file
    // again (tus termination): each upload request is held 1.5 s here so
    // there is time to press "Anhalten".
    const extra = lib.pdfFile(dir, 'Zwischenstand.pdf', 200 * 1024, 9);
    let patching;
    const patchStarted = new Promise((r) => { patching = r; });
    await page.route('**/api/uploads/**', async (route) => {
      if (route.request().method() === 'PATCH') {
        patching();
        await new Promise((r) => setTimeout(r, 1500));
      }
      try { await route.continue(); } catch (e) { /* aborted by "Anhalten" meanwhile */ }
    });
    await page.getByLabel('Dateien auswählen').setInputFiles(extra);
    const row = page.locator('#uploads li.upload').filter({ hasText: 'Zwischenstand.pdf' });
    // Pause while data flows (a lost creation answer is tried below).
    await patchStarted;
    await row.getByRole('button', { name: 'Anhalten' }).click();
    await row.locator('.upload__state').filter({ hasText: 'Angehalten' }).waitFor();
    await page.unroute('**/api/uploads/**');
    await row.getByRole('button', { name: 'Fortsetzen' }).focus();
    await page.keyboard.press('Enter');
    await row.locator('.upload__state').filter({ hasText: 'Fertig hochgeladen' }).waitFor({ timeout: 30000 });
    const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/uploads/'));
    await row.getByRole('button', { name: 'Entfernen' }).click();
    assert.equal((await deleted).status(), 204, 'the upload was terminated');
    await row.waitFor({ state: 'detached' });
    // Screen readers hear it (the polite live region).
    await page.waitForFunction(() => /entfernt/.test(document.getElementById('upload-ansage').textContent));

    // Two files; the connection of one upload request is cut midway, and
    // the answer to one creation is lost after the server made the upload:
    // the page's Idempotency-Key makes the retried POST get that upload,
    // not a second, empty one (which would block the submission below).
    // The first file is larger than the page's 32 MiB chunk, so it takes
    // two PATCHes and the cut one resumes from the middle.
    const files = [lib.pdfFile(dir, 'Arbeitsunfähigkeitsbescheinigung.pdf', 33 * 1024 * 1024 + 12345, 1), lib.pdfFile(dir, 'Befund <Labor>.pdf', 300 * 1024, 2)];
    const patches = [];
    const keys = [];
    let cut = 0;
    let lostCreation = 0;
    await page.route('**/api/uploads/**', async (route) => {
      const req = route.request();
      if (req.method() === 'POST') {
        keys.push(req.headers()['idempotency-key']);
        if (lostCreation === 0) {
          lostCreation++;
          const res = await route.fetch();
          assert.equal(res.status(), 201, 'the server made the upload whose answer is lost');
          log('dropping the answer to a creation');
          return route.abort('connectionreset');
        }
      }
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
    await check(page, 'hochladen-leer');
    await page.getByLabel('Dateien auswählen').setInputFiles(files);
    await page.locator('#uploads li.upload[data-state="complete"]').nth(1).waitFor({ timeout: 60000 });
    assert.equal(cut, 1, 'one upload request was cut off');
    assert.equal(lostCreation, 1, 'one creation answer was lost');
    assert.equal(keys.length, 3, `two creations and one retry: ${keys}`);
    assert.ok(keys.every((k) => /^"[0-9a-f]{32}"$/.test(k || '')), `every creation carries an Idempotency-Key: ${keys}`);
    assert.equal(new Set(keys).size, 2, `the retry repeats its file's key, the other file has its own: ${keys}`);
    const cutAt = patches.find((o) => o > 0);
    assert.ok(patches.filter((o) => o === cutAt).length >= 2, `the cut PATCH was sent again from the server's offset ${cutAt}: ${patches}`);
    await page.unroute('**/api/uploads/**');

    // The form: autosaved on change, there again after a reload.
    await page.getByLabel('Betreff').fill(subject);
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/draft') && r.request().method() === 'PUT' &&
      (r.request().postData() || '').includes('Anbei meine Unterlagen.') && r.ok());
    await page.getByLabel('Nachricht an Ihre Krankenkasse (freiwillig)').fill('Anbei meine Unterlagen.');
    await saved;
    await page.reload();
    assert.equal(await page.getByLabel('Anliegen').inputValue(), 'krankengeld');
    assert.equal(await page.getByLabel('Betreff').inputValue(), subject);
    assert.equal(await page.getByLabel('Nachricht an Ihre Krankenkasse (freiwillig)').inputValue(), 'Anbei meine Unterlagen.');
    const listed = await page.locator('#uploads li.upload .upload__name').allInnerTexts();
    assert.deepEqual(listed.sort(), files.map((f) => path.basename(f)).sort(), 'the two files are listed after a reload');
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
    // The account session is untouched by the PIN session's end, and the
    // receipt is in her Postfach.
    await page.goto('/postfach');
    await page.getByRole('link', { name: subject }).waitFor();
    await pinCtx.close();

    // ---- The caseworker sees the submission and answers with an attachment. ----
    await cw.getByRole('link', { name: 'Team-Postfach' }).click();
    await cw.getByRole('link', { name: subject }).click();
    await check(cw, 'team-unterhaltung', { shots });
    for (const f of files) {
      assert.ok((await cw.locator('main').innerText()).includes(path.basename(f)), `the caseworker sees ${path.basename(f)}`);
    }
    const answer = path.join(dir, 'Bescheid Krankengeld.pdf');
    fs.copyFileSync(lib.pdfFile(dir, 'bescheid-src.pdf', 40 * 1024, 3), answer);
    await cw.getByLabel('Ihre Nachricht').fill('Vielen Dank, wir haben Ihre Unterlagen erhalten. Anbei unser Bescheid.');
    await cw.getByLabel('Anhänge (freiwillig)').setInputFiles(answer);
    // The receipt of the submission announced itself already (one mail).
    const newsBefore = (await waitForNews(srv, env, 1, 15000)).filter(isNews).length;
    await cw.getByRole('button', { name: 'Antwort senden' }).click();
    await cw.locator('.notice--success').filter({ hasText: 'Ihre Nachricht wurde gesendet.' }).waitFor();
    await check(cw, 'team-unterhaltung-beantwortet');

    await cw.getByRole('link', { name: 'Vorgänge' }).click();
    await check(cw, 'team-vorgaenge', { shots });
    await cw.locator(`a[href="/team/vorgaenge/${vorgang}"]`).click();
    await cw.getByLabel('In Bearbeitung').check();
    await cw.getByLabel('Begründung').fill('Unterlagen vollständig, Prüfung beginnt.');
    await cw.getByRole('button', { name: 'Status ändern' }).click();
    await cw.locator('.notice--success').filter({ hasText: 'Der Status ist geändert.' }).waitFor();
    await check(cw, 'team-vorgang', { shots });

    // ---- Notification mail: content-free. ----
    await checkMail(srv, env, newsBefore, ['Vielen Dank, wir haben', 'Bescheid Krankengeld', 'AU-Bescheinigung', 'Arbeitsunfähigkeitsbescheinigung', 'Befund']);

    // ---- The insured person logs in with password and TOTP. ----
    const inCtx = await newContext();
    const ins = await inCtx.newPage();
    watch(ins);
    await login(ins, 'erika', demo, shots);
    await ins.waitForURL(/\/postfach$/);
    await check(ins, 'postfach', { shots });
    await ins.getByRole('link', { name: subject }).click();
    assert.match(await ins.locator('main').innerText(), /Vielen Dank, wir haben Ihre Unterlagen erhalten/);
    await check(ins, 'unterhaltung', { shots });
    const [dl] = await Promise.all([ins.waitForEvent('download'), ins.getByRole('link', { name: 'Bescheid Krankengeld.pdf' }).click()]);
    const got = path.join(dir, 'download.pdf');
    await dl.saveAs(got);
    assert.equal(lib.sha256(got), lib.sha256(answer), 'the downloaded attachment is byte-identical');
    await ins.getByRole('link', { name: 'Vorgänge' }).click();
    await check(ins, 'vorgaenge');
    await ins.locator(`a[href="/vorgaenge/${vorgang}"]`).click();
    assert.match(await ins.locator('.timeline').innerText(), /In Bearbeitung/);
    assert.ok(!(await ins.locator('main').innerText()).includes('Prüfung beginnt'), 'the caseworker\'s reason stays internal');
    await check(ins, 'vorgang', { shots });
    // An answer back, and a look at Mein Konto.
    await ins.getByRole('link', { name: 'Postfach', exact: true }).click();
    await ins.getByRole('link', { name: subject }).click();
    await ins.getByLabel('Ihre Nachricht').fill('Danke für den Bescheid.');
    await ins.getByRole('button', { name: 'Antwort senden' }).click();
    await ins.locator('.notice--success').filter({ hasText: 'Ihre Nachricht wurde gesendet.' }).waitFor();
    await ins.goto('/postfach/neu');
    await check(ins, 'postfach-neu');
    await ins.getByRole('link', { name: 'Mein Konto' }).click();
    assert.match(await ins.locator('main').innerText(), /Authenticator-Apps/);
    await check(ins, 'konto', { shots });
    await ins.goto('/konto/geraete/aktivieren');
    await check(ins, 'geraet-aktivieren');
    await ins.getByRole('button', { name: 'Abmelden', exact: true }).click();
    await ins.waitForURL(/hinweis=abgemeldet/);
    await check(ins, 'abgemeldet');

    // ---- The caseworker opens the person's account: lock and unlock. ----
    await cw.getByRole('link', { name: 'Team-Postfach' }).click();
    await cw.getByRole('link', { name: subject }).click();
    assert.match(await cw.locator('main').innerText(), /Danke für den Bescheid\./);
    await cw.getByRole('link', { name: 'Konto der Person' }).click();
    await check(cw, 'team-konto', { shots });
    await cw.getByRole('button', { name: 'Zugang sperren' }).click();
    await cw.locator('main').filter({ hasText: 'Gesperrt (Verdacht auf unbefugte Nutzung)' }).waitFor();
    await cw.getByRole('button', { name: 'Zugang entsperren' }).click();
    await cw.locator('.notice--success').filter({ hasText: 'Der Zugang ist entsperrt.' }).waitFor();

    // ---- The team lead keeps the thread for legal reasons, then ends that. ----
    // A caseworker has no such button; the team lead of the same team does.
    await cw.getByRole('link', { name: 'Team-Postfach' }).click();
    await cw.getByRole('link', { name: subject }).click();
    assert.equal(await cw.getByRole('button', { name: 'Aufbewahren' }).count(), 0, 'a caseworker cannot set a legal hold');
    const leadCtx = await newContext();
    const lead = await leadCtx.newPage();
    watch(lead);
    await login(lead, 'leitung', demo, false);
    await lead.waitForURL(/\/team$/);
    await lead.getByRole('link', { name: subject }).click();
    await lead.locator('#h-aufbewahrung').waitFor();
    await check(lead, 'team-aufbewahrung');
    await lead.getByRole('button', { name: 'Aufbewahren', exact: true }).click();
    await lead.locator('.notice--success').filter({ hasText: 'wegen rechtlicher Gründe aufbewahrt' }).waitFor();
    assert.match(await lead.locator('main').innerText(), /Diese Unterhaltung wird aufbewahrt und von den Löschfristen ausgenommen/);
    await check(lead, 'team-aufbewahrung-an', { shots });
    // Keyboard only: the button is reachable and pressed with Enter.
    await lead.getByRole('button', { name: 'Aufbewahrung beenden' }).focus();
    await Promise.all([lead.waitForURL(/hinweis=aufbewahrung-aus/), lead.keyboard.press('Enter')]);
    await lead.locator('.notice--success').filter({ hasText: 'Die Aufbewahrung wegen rechtlicher Gründe ist beendet' }).waitFor();
    assert.match(await lead.locator('main').innerText(), /unterliegt den normalen Löschfristen/);
    await check(lead, 'team-aufbewahrung-aus');
    await leadCtx.close();

    // ---- The provider admin consents at the first login and invites a user. ----
    const admCtx = await newContext();
    const adm = await admCtx.newPage();
    watch(adm);
    await login(adm, 'lebadmin', demo, false);
    if (/\/anmelden\/einwilligung/.test(adm.url())) {
      await check(adm, 'einwilligung');
      await adm.getByLabel(/Ich willige in die beschriebene Verarbeitung/).check();
      await adm.getByRole('button', { name: 'Einwilligen und weiter' }).click();
    }
    await adm.waitForURL(/\/verwaltung\/benutzer$/);
    await adm.getByLabel('Anrede').selectOption('Frau');
    await adm.getByLabel('Vorname').fill('Petra');
    await adm.getByLabel('Nachname').fill(`Praxis <b>${run}</b>`);
    await adm.getByLabel('E-Mail-Adresse').fill(`petra.${run}@example.org`);
    await adm.getByRole('button', { name: 'Einladung senden' }).click();
    await adm.locator('.notice--success').filter({ hasText: 'Die Einladung ist verschickt.' }).waitFor();
    assert.ok((await adm.locator('tbody').innerText()).includes(`Praxis <b>${run}</b>`), 'the invited user is listed (as text)');
    await check(adm, 'verwaltung-benutzer', { shots });
    // Resend, then revoke the invitation (the buttons name the person for screen readers).
    const invited = adm.locator('tbody tr').filter({ hasText: `Praxis <b>${run}</b>` });
    await invited.getByRole('button', { name: /^Erneut senden/ }).click();
    await adm.locator('.notice--success').filter({ hasText: 'Die Einladung ist erneut verschickt' }).waitFor();
    await adm.locator('tbody tr').filter({ hasText: `Praxis <b>${run}</b>` }).getByRole('button', { name: /^Widerrufen/ }).click();
    await adm.locator('.notice--success').filter({ hasText: 'Die Einladung ist widerrufen.' }).waitFor();
    const revoked = await adm.locator('tbody tr').filter({ hasText: `Praxis <b>${run}</b>` }).innerText();
    assert.ok(!/Eingeladen/.test(revoked), 'the revoked invitation is no longer open: ' + revoked);
    await check(adm, 'verwaltung-benutzer-widerrufen');
    await admCtx.close();

    // ---- A person without an account registers and logs in the first time. ----
    await registration(newContext, watch, srv, env, demo, shots);

    // ---- The auditor finds the events. ----
    await audit(browser, newContext, demo, vorgang, shots);

    await cwCtx.close();
    await inCtx.close();
  } catch (e) {
    const logs = srv.logs().split('\n').filter((l) => /"level":"(ERROR|WARN)"/.test(l)).slice(-10).join('\n');
    if (logs) { console.error('[e2e] last warnings of postbox:\n' + logs); }
    throw e;
  } finally {
    await browser.close();
    await srv.stop();
  }
}

/* Log in with username, password and a TOTP code (a first login also sets
   the security question). */
async function login(page, user, demo, shots) {
  await page.goto('/anmelden?kasse=' + encodeURIComponent(demo.kasse));
  if (shots && user === 'erika') { await check(page, 'anmelden', { shots }); } else { await check(page, 'anmelden-' + user); }
  await page.getByLabel('Benutzername').fill(user);
  await page.getByLabel('Passwort', { exact: true }).fill(demo.logins[user]);
  await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/anmelden'),
    page.getByRole('button', { name: 'Weiter' }).click()]);
  await page.waitForLoadState();
  if (!/\/anmelden\/sicherheitscode/.test(page.url())) {
    throw new Error(`login of ${user}: no second factor step, the page says:\n` + await page.locator('main').innerText());
  }
  if (shots && user === 'erika') { await check(page, 'sicherheitscode', { shots }); } else { await check(page, 'sicherheitscode-' + user); }
  const app = page.getByLabel('Code aus der Authenticator-App');
  if (await app.count() > 0) { await app.check(); }
  await page.getByLabel('Sicherheitscode').fill(await lib.freshTOTP(user, demo.totp[user]));
  await page.getByRole('button', { name: 'Anmelden' }).click();
  await page.waitForURL((u) => !/\/anmelden\/sicherheitscode/.test(u.pathname));
  if (/\/anmelden\/sicherheitsfrage/.test(page.url())) {
    await check(page, 'sicherheitsfrage-' + user);
    await page.getByLabel('Sicherheitsfrage').selectOption({ index: 1 });
    await page.getByLabel('Ihre Antwort').fill('Bello der Hund');
    await page.getByRole('button', { name: 'Speichern und weiter' }).click();
  }
}

/* The mails to an address (default: the demo person): in server mode from
   maildev's API (those of this run), embedded the .eml files (bodies
   quoted-printable decoded). */
async function mailsNow(srv, env, to) {
  to = to || 'erika.mustermann@example.org';
  if (env && env.POSTBOX_TEST_MAILDEV_URL) {
    const res = await fetch(env.POSTBOX_TEST_MAILDEV_URL.replace(/\/$/, '') + '/api/email?to.address=' + encodeURIComponent(to));
    const all = await res.json();
    return all.filter((m) => Date.parse(m.time || m.date) >= srv.startedAt - 2000)
      .map((m) => ({ subject: m.subject || '', body: (m.subject || '') + '\n' + (m.text || '') + '\n' + (m.html || '') }));
  }
  const mailDir = path.join(srv.data, 'mail');
  const files = fs.existsSync(mailDir) ? fs.readdirSync(mailDir).filter((f) => f.endsWith('.eml')) : [];
  return files.map((f) => fs.readFileSync(path.join(mailDir, f), 'utf8'))
    .filter((raw) => new RegExp('^To: .*' + to.replace(/[.]/g, '\\.'), 'mi').test(raw))
    .map((raw) => {
      const m = raw.match(/^Subject: (.*)$/m);
      const body = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
      return { subject: m ? m[1].trim() : '', body };
    });
}

/* Waits (bounded) for a mail to an address with a link to path; returns
   the link. */
async function mailLink(srv, env, to, linkPath) {
  const re = new RegExp('https?://[^\\s"<>]*' + linkPath.replace(/\//g, '\\/') + '\\?token=[A-Za-z0-9_-]+');
  const deadline = Date.now() + 20000;
  for (;;) {
    for (const m of await mailsNow(srv, env, to)) {
      const l = m.body.match(re);
      if (l) { return l[0]; }
    }
    assert.ok(Date.now() < deadline, `no mail to ${to} with a link to ${linkPath}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/* The newest SMS to a number written after since (the SMS directory of the
   data dir), waiting for it; returns the 6-digit code. */
async function smsCode(srv, number, since) {
  const dir = path.join(srv.data, 'sms');
  const deadline = Date.now() + 15000;
  for (;;) {
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().reverse() : [];
    for (const f of files) {
      const file = path.join(dir, f);
      if (fs.statSync(file).mtimeMs < since) { continue; }
      const text = fs.readFileSync(file, 'utf8');
      const code = text.match(/\b(\d{6})\b/);
      if (text.startsWith('An: ' + number) && code) { return code[1]; }
    }
    assert.ok(Date.now() < deadline, `no SMS to ${number}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/* Registration of the demo's person without an account: the form, the
   mTAN for the mobile number, the e-mail link, the Freischaltcode from the
   letter (PDF), the first login with it (a wrong code first: the page says
   how many tries are left) and the security question. */
async function registration(newContext, watch, srv, env, demo, shots) {
  const t0 = Date.now();
  const ctx = await newContext();
  const page = await ctx.newPage();
  watch(page);
  const user = 'maxm';
  const password = 'Herbst#2026q';
  let since = Date.now() - 1000;
  await page.goto(`/registrierung?kasse=${demo.kasse}`);
  await page.getByLabel('Krankenversichertennummer').fill(demo.newcomer.kvnr);
  await page.getByLabel('Benutzername').fill(user);
  await page.getByLabel('Passwort', { exact: true }).fill(password);
  await page.getByLabel('Passwort wiederholen').fill(password);
  await page.getByLabel('E-Mail-Adresse').fill(demo.newcomer.email);
  await page.getByLabel('Mobilnummer').fill('0151 23456789');
  await page.getByLabel(/Ich habe die Hinweise zum Datenschutz/).check();
  await page.getByRole('button', { name: 'Registrieren' }).click();
  await page.waitForURL(/\/registrierung\/mobil/);
  await check(page, 'registrierung-mobil', { shots });
  await page.getByLabel('mTAN aus der SMS').fill(await smsCode(srv, '+4915123456789', since));
  await page.getByRole('button', { name: 'Mobilnummer bestätigen' }).click();
  await page.locator('main').filter({ hasText: 'Ihre Mobilnummer ist bestätigt' }).waitFor();
  await check(page, 'registrierung-mobil-bestaetigt');

  await page.goto(await mailLink(srv, env, demo.newcomer.email, '/registrierung/bestaetigen'));
  await check(page, 'registrierung-email');
  await page.getByRole('button', { name: 'E-Mail-Adresse bestätigen' }).click();
  await page.locator('.notice--success').filter({ hasText: 'Ihre E-Mail-Adresse ist bestätigt' }).waitFor();
  await check(page, 'registrierung-email-bestaetigt');

  const letters = path.join(srv.data, 'letters');
  const newest = fs.readdirSync(letters).filter((f) => f.endsWith('.pdf')).sort().pop();
  const letterText = execFileSync('pdftotext', ['-layout', path.join(letters, newest), '-'], { encoding: 'utf8' });
  const unlock = (letterText.match(/\b([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})\b/) || [])[1];
  assert.ok(unlock, 'the letter carries the Freischaltcode:\n' + letterText);

  since = Date.now() - 1000;
  await page.goto(`/anmelden?kasse=${demo.kasse}`);
  await page.getByLabel('Benutzername').fill(user);
  await page.getByLabel('Passwort', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Weiter' }).click();
  await page.waitForURL(/\/anmelden\/sicherheitscode/);
  assert.match(await page.locator('h1').innerText(), /Erstanmeldung: Freischaltcode und mTAN/);
  await check(page, 'erstanmeldung', { shots });
  const tan = await smsCode(srv, '+4915123456789', since);
  await page.getByLabel('Freischaltcode').fill('AAAA-BBBB-CCCC');
  await page.getByLabel('Sicherheitscode').fill(tan);
  await page.getByRole('button', { name: 'Anmelden', exact: true }).click();
  await page.locator('.error-summary').waitFor();
  assert.match(await page.locator('.error-summary').innerText(), /Der Freischaltcode ist nicht richtig\..*Noch 4 Versuche/s);
  await check(page, 'erstanmeldung-fehler');
  await page.getByLabel('Freischaltcode').fill(unlock.toLowerCase());
  await page.getByLabel('Sicherheitscode').fill(tan);
  await page.getByRole('button', { name: 'Anmelden', exact: true }).click();
  await page.waitForURL(/\/anmelden\/sicherheitsfrage/);
  await check(page, 'sicherheitsfrage', { shots });
  await page.getByLabel('Sicherheitsfrage').selectOption({ index: 1 });
  await page.getByLabel('Ihre Antwort').fill('Hasso');
  await page.getByRole('button', { name: 'Speichern und weiter' }).click();
  await page.waitForURL(/\/postfach$/);

  // Mein Konto: confirm with an mTAN, add an authenticator app and set it
  // up with its first code (Gerät hinzufügen → aktivieren → einrichten).
  await page.getByRole('link', { name: 'Mein Konto' }).click();
  since = Date.now() - 1000;
  await page.getByRole('button', { name: 'mTAN per SMS anfordern' }).click();
  await page.waitForURL(/sms=1/);
  const stepUp = page.locator('section[aria-labelledby="bestaetigen"]');
  await stepUp.getByLabel('Sicherheitscode').fill(await smsCode(srv, '+4915123456789', since));
  await stepUp.getByRole('button', { name: 'Bestätigen', exact: true }).click();
  await page.locator('.notice--success').filter({ hasText: 'Danke, bestätigt.' }).waitFor();
  await page.getByLabel('Gerät hinzufügen: Name').fill('Handy von Max');
  await page.getByRole('button', { name: 'Gerät hinzufügen' }).click();
  await page.locator('#aktivierungscode').waitFor();
  const activation = (await page.locator('#aktivierungscode').innerText()).trim();
  await page.getByRole('link', { name: 'Weiter: Gerät aktivieren' }).click();
  await page.getByLabel('Aktivierungscode').fill(activation);
  await page.getByLabel('6-stellige PIN', { exact: true }).fill('482913');
  await page.getByLabel('6-stellige PIN wiederholen').fill('482913');
  await page.getByRole('button', { name: 'Weiter zum QR-Code' }).click();
  await page.waitForURL(/\/konto\/geraete\/[^/]+\/einrichten/);
  await check(page, 'geraet-einrichten', { shots });
  const secret = (await page.locator('#schluessel').innerText()).replace(/\s+/g, '');
  await page.getByLabel('6-stelliger Code').fill(lib.totp(secret, Math.floor(Date.now() / 30000)));
  await page.getByRole('button', { name: 'Gerät bestätigen' }).click();
  await page.waitForURL(/hinweis=geraet-aktiviert/);
  assert.match(await page.locator('main').innerText(), /Handy von Max/);
  await check(page, 'konto-geraet-aktiviert');
  log(`registration, first login with the Freischaltcode and a new authenticator app passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await ctx.close();
}

const isNews = (m) => /Neue Nachricht/.test(m.subject);

/* Waits (bounded) until there are at least n "Neue Nachricht" mails. */
async function waitForNews(srv, env, n, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const mails = await mailsNow(srv, env);
    if (mails.filter(isNews).length >= n || Date.now() > deadline) { return mails; }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/* The reply makes exactly one more "Neue Nachricht" mail than there were
   before it, and no mail of the run carries any of the given texts. */
async function checkMail(srv, env, before, secrets) {
  await waitForNews(srv, env, before + 1, 20000);
  await new Promise((r) => setTimeout(r, 1500)); // a second mail would come now
  const mails = await mailsNow(srv, env);
  const news = mails.filter(isNews).length;
  assert.equal(news - before, 1, `one "Neue Nachricht" mail for the reply, got ${news - before}: ${mails.map((m) => m.subject).join(' | ')}`);
  for (const m of mails) {
    for (const s of secrets) {
      assert.ok(!m.body.includes(s), `the mail "${m.subject}" contains "${s}"`);
    }
  }
  log(`the reply made one content-free mail (mails to the insured person: ${mails.map((m) => m.subject).join(' | ')})`);
}

/* The auditor finds the journey's events: the Vorgang's own ones by its
   number, and each kind of step by type for today; the CSV export of the
   Vorgang's events names it. */
async function audit(browser, newContext, demo, vorgang, shots) {
  const ctx = await newContext();
  const page = await ctx.newPage();
  await login(page, 'pruefer', demo, false);
  await page.waitForURL(/\/pruefung$/);
  await check(page, 'pruefung');
  const deadline = Date.now() + 15000;
  for (;;) { // the shipper moves events to the event store every 200 ms
    await page.goto('/pruefung?suche=1&objektart=vorgang&objekt=' + encodeURIComponent(vorgang));
    const text = await page.locator('main').innerText();
    if (['intake.submitted', 'vorgang.status.changed'].every((t) => text.includes(t))) { break; }
    assert.ok(Date.now() < deadline, 'the auditor finds the Vorgang\'s events:\n' + text);
    await page.waitForTimeout(500);
  }
  await check(page, 'pruefung-ergebnis', { shots });
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Alle Treffer als CSV herunterladen' }).click()]);
  const csvText = fs.readFileSync(await csv.path(), 'utf8');
  assert.ok(csvText.includes(vorgang) && csvText.includes('vorgang.status.changed'), 'the CSV export lists the Vorgang\'s events');

  const today = new Date().toLocaleDateString('sv-SE', { timeZone: 'Europe/Berlin' });
  for (const type of ['intake.pin.issued', 'intake.pin.login', 'intake.upload.completed', 'intake.submitted', 'intake.file.submitted',
    'mailbox.message.sent', 'mailbox.attachment.downloaded', 'mailbox.thread.legal_hold', 'vorgang.status.changed', 'auth.login',
    'auth.account.activated', 'audit.query']) {
    await page.goto('/pruefung');
    await page.getByLabel('Von (Datum)').fill(today);
    await page.getByLabel('Ereignisart').fill(type);
    await Promise.all([page.waitForURL(/suche=1/), page.getByRole('button', { name: 'Suchen' }).click()]);
    await page.waitForLoadState();
    const rows = await page.locator('tbody tr').count();
    assert.ok(rows > 0, `the auditor finds ${type} events of today`);
  }
  await check(page, 'pruefung-typ');
  log('the auditor found every step of the journey');
  await ctx.close();
}

/* The environment of a run: embedded (no POSTBOX_* at all, whatever the
   caller exported) or server mode against the real services of
   /var/tmp/postbox-services/env. Server mode gets a PostgreSQL database
   and a ClickHouse database of its own (dropped afterwards), so nothing of
   other tests or earlier runs (pending mails, rate limits) is in the way;
   the MinIO bucket is shared by all e2e runs (objects have unique keys). */
function envFor(mode, id) {
  const base = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('POSTBOX_')) { base[k] = v; }
  }
  if (mode === 'embedded') { return base; }
  const t = process.env;
  for (const k of ['POSTBOX_TEST_PG_DSN', 'POSTBOX_TEST_MINIO_ENDPOINT', 'POSTBOX_TEST_CLICKHOUSE_ADDR', 'POSTBOX_TEST_SMTP_ADDR', 'POSTBOX_TEST_MAILDEV_URL']) {
    if (!t[k]) { throw new Error(`server mode needs ${k} (source /var/tmp/postbox-services/env)`); }
  }
  const dsn = new URL(t.POSTBOX_TEST_PG_DSN);
  dsn.pathname = '/postbox_e2e_' + id;
  return Object.assign(base, {
    POSTBOX_DATABASE_URL: dsn.toString(),
    POSTBOX_S3_ENDPOINT: t.POSTBOX_TEST_MINIO_ENDPOINT,
    POSTBOX_S3_ACCESS_KEY: t.POSTBOX_TEST_MINIO_ACCESS_KEY,
    POSTBOX_S3_SECRET_KEY: t.POSTBOX_TEST_MINIO_SECRET_KEY,
    POSTBOX_S3_BUCKET: 'postbox-e2e',
    POSTBOX_CLICKHOUSE_ADDR: t.POSTBOX_TEST_CLICKHOUSE_ADDR,
    POSTBOX_CLICKHOUSE_DATABASE: 'postbox_e2e_' + id,
    POSTBOX_SMTP_ADDR: t.POSTBOX_TEST_SMTP_ADDR,
    POSTBOX_TEST_MAILDEV_URL: t.POSTBOX_TEST_MAILDEV_URL,
    POSTBOX_SECRET_KEY: require('node:crypto').randomBytes(32).toString('hex')
  });
}

function psql(sql) {
  execFileSync('psql', [process.env.POSTBOX_TEST_PG_DSN, '-v', 'ON_ERROR_STOP=1', '-qc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function clickhouse(sql) {
  if (!process.env.POSTBOX_TEST_CLICKHOUSE_HTTP) { return; }
  await fetch(process.env.POSTBOX_TEST_CLICKHOUSE_HTTP, { method: 'POST', body: sql }).catch(() => {});
}

(async () => {
  const started = Date.now();
  const dir = lib.tmpdir();
  const bin = lib.build(dir);
  // Server mode when the services' env is there (./deploy/test sources it),
  // or when asked for; POSTBOX_E2E_SERVER=0 turns it off.
  let modes = ['embedded'];
  if (process.env.POSTBOX_E2E_SERVER === '1' || (process.env.POSTBOX_TEST_PG_DSN && process.env.POSTBOX_E2E_SERVER !== '0')) {
    modes.push('server');
  }
  if (process.env.POSTBOX_E2E_MODES) { modes = process.env.POSTBOX_E2E_MODES.split(','); }
  let failed = false;
  for (const mode of modes) {
    const t0 = Date.now();
    const id = Date.now().toString(36) + process.pid.toString(36);
    try {
      if (mode === 'server') { psql(`CREATE DATABASE postbox_e2e_${id}`); }
      await journey(bin, mode, envFor(mode, id));
      log(`${mode}: journey passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      failed = true;
      console.error(`[e2e] ${mode}: FAILED:`, e && e.stack || e);
    } finally {
      if (mode === 'server') {
        try { psql(`DROP DATABASE IF EXISTS postbox_e2e_${id}`); } catch (e) { log('could not drop the test database:', e.message); }
        await clickhouse(`DROP DATABASE IF EXISTS postbox_e2e_${id}`);
      }
    }
  }
  const total = lib.axeResults.reduce((n, r) => n + r.violations, 0);
  log(`axe-core: ${lib.axeResults.length} page checks, ${total} violations`);
  log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (!failed) { lib.cleanup(); }
  process.exit(failed ? 1 : 0);
})();
