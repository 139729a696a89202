/* Upload page of the Einmal-PIN flow.
 *
 * - Files (file input or drag and drop) go to the tus endpoint with the
 *   bundled tus-js-client: chunked, resumable, automatic retries after a
 *   dropped connection, pause and resume per file, a <progress> with text.
 * - A file that was interrupted earlier resumes when it is chosen again
 *   (the client remembers the upload address in localStorage).
 * - Every upload creation (tus POST) carries an Idempotency-Key: random,
 *   made once per file and kept in localStorage next to tus-js-client's
 *   resume fingerprint. When the answer to the POST is lost, the client's
 *   retry (or a later selection of the same file) sends the same key and
 *   the server answers with the upload it already made instead of a
 *   second, empty one.
 * - The form fields are saved on every change (PUT /api/draft with the
 *   session's CSRF token); the server's German messages appear at the
 *   fields.
 * Everything the user reads is German. No inline script exists (CSP). */
(function () {
  'use strict';

  var form = document.getElementById('entwurf');
  if (!form || !window.tus) { return; }

  var csrf = form.getAttribute('data-csrf');
  var endpoint = new URL(form.getAttribute('data-upload-url'), window.location.href).href;
  var draftURL = form.getAttribute('data-draft-url');
  var maxFile = parseInt(form.getAttribute('data-max-file'), 10) || 0;
  var list = document.getElementById('uploads');
  var input = document.getElementById('f-dateien');
  var drop = document.getElementById('dropzone');
  var announcer = document.getElementById('upload-ansage');
  var autosave = document.getElementById('autosave');
  var submitButton = document.getElementById('absenden');
  var running = 0;
  // One PATCH per 32 MiB: the server's part size, so every request is one
  // part in the object store (smaller chunks are staged and copied again,
  // and each request costs a round trip). The server keeps what arrived
  // in whole parts, so a broken connection loses at most one chunk.
  var CHUNK = 32 * 1024 * 1024;

  function announce(text) {
    // Replace the text so screen readers read it even when it repeats.
    announcer.textContent = '';
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function size(n) {
    if (n < 1000) { return n + ' Bytes'; }
    if (n < 1e6) { return Math.round(n / 1000) + ' KB'; }
    if (n < 1e9) { return (n / 1e6).toFixed(1).replace('.', ',') + ' MB'; }
    return (n / 1e9).toFixed(2).replace('.', ',') + ' GB';
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function problemText(err) {
    var res = err && err.originalResponse;
    if (res) {
      try {
        var p = JSON.parse(res.getBody());
        if (p && (p.detail || p.title)) { return p.detail || p.title; }
      } catch (e) { /* not JSON */ }
      return 'Der Server hat die Datei abgelehnt (Status ' + res.getStatus() + ').';
    }
    return 'Die Verbindung ist unterbrochen. Bitte prüfen Sie Ihre Internetverbindung und wählen Sie die Datei erneut aus.';
  }

  function removeEmptyHint() {
    var empty = document.getElementById('uploads-leer');
    if (empty) { empty.parentNode.removeChild(empty); }
  }

  function setBusy(delta) {
    running += delta;
    if (submitButton) { submitButton.setAttribute('aria-disabled', running > 0 ? 'true' : 'false'); }
  }

  /* One row of the list: name, state text, progress bar, buttons. */
  function Row(name, existing) {
    removeEmptyHint();
    this.li = existing || el('li', 'upload');
    this.li.textContent = '';
    var head = el('div', 'upload__head');
    this.nameEl = el('p', 'upload__name', name);
    this.stateEl = el('p', 'upload__state', 'Wartet …');
    head.appendChild(this.nameEl);
    head.appendChild(this.stateEl);
    this.bar = el('progress');
    this.bar.max = 100;
    this.bar.value = 0;
    this.bar.setAttribute('aria-label', 'Fortschritt ' + name);
    this.bar.textContent = '0 %';
    this.actions = el('div', 'upload__actions');
    this.li.appendChild(head);
    this.li.appendChild(this.bar);
    this.li.appendChild(this.actions);
    if (!existing) { list.appendChild(this.li); }
  }
  Row.prototype.state = function (text, isError) {
    this.stateEl.textContent = text;
    this.stateEl.className = 'upload__state' + (isError ? ' upload__state--error' : '');
  };
  Row.prototype.progress = function (sent, total) {
    var pct = total > 0 ? Math.floor(sent / total * 100) : 0;
    this.bar.value = pct;
    this.bar.textContent = pct + ' %';
    this.state(size(sent) + ' von ' + size(total) + ' hochgeladen (' + pct + ' %)');
  };
  Row.prototype.button = function (label, onClick, secondary) {
    var b = el('button', 'button button--small' + (secondary ? ' button--secondary' : ''), label);
    b.type = 'button';
    b.addEventListener('click', onClick);
    this.actions.appendChild(b);
    return b;
  };
  Row.prototype.clearButtons = function () { this.actions.textContent = ''; };

  /* Idempotency keys, stored per resume fingerprint. localStorage may be
   * unavailable (private mode): the key then lives as long as the page,
   * which still covers the client's automatic retries. */
  var KEY_PREFIX = 'postbox-idempotency::';

  function newKey() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
  }

  function loadKey(name) {
    try {
      var k = window.localStorage.getItem(name);
      if (k && /^[0-9a-f]{32}$/.test(k)) { return k; }
      k = newKey();
      window.localStorage.setItem(name, k);
      return k;
    } catch (e) {
      return newKey();
    }
  }

  function dropKey(name) {
    try { window.localStorage.removeItem(name); } catch (e) { /* nothing stored */ }
  }

  function uploadIdOf(url) {
    return url ? url.replace(/\/+$/, '').split('/').pop() : '';
  }

  function terminate(id, row, name) {
    fetch(endpoint.replace(/\/?$/, '/') + encodeURIComponent(id), {
      method: 'DELETE', credentials: 'same-origin',
      headers: { 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': csrf }
    }).then(function (res) {
      if (res.status === 204 || res.status === 404 || res.status === 410) {
        row.li.parentNode.removeChild(row.li);
        announce('Die Datei „' + name + '“ wurde entfernt.');
        input.focus();
      } else {
        return res.json().then(function (p) { row.state(p.detail || p.title, true); });
      }
    }).catch(function () {
      row.state('Die Datei konnte nicht entfernt werden: keine Verbindung. Bitte versuchen Sie es erneut.', true);
    });
  }

  function start(file) {
    if (maxFile > 0 && file.size > maxFile) {
      var bad = new Row(file.name);
      bad.state('Die Datei ist ' + size(file.size) + ' groß; erlaubt sind höchstens ' + size(maxFile) + '. Bitte verkleinern Sie sie (z. B. als PDF mit geringerer Auflösung).', true);
      bad.bar.hidden = true;
      bad.button('Aus der Liste entfernen', function () { bad.li.parentNode.removeChild(bad.li); input.focus(); }, true);
      announce('Die Datei „' + file.name + '“ ist zu groß.');
      return;
    }
    var row;
    var paused = false;
    var keyName = null;
    var key = newKey();
    var upload = new window.tus.Upload(file, {
      endpoint: endpoint,
      chunkSize: CHUNK,
      retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
      headers: { 'X-CSRF-Token': csrf },
      onBeforeRequest: function (req) {
        // Only the creation: a repeated POST must name the same upload.
        if (req.getMethod() === 'POST') { req.setHeader('Idempotency-Key', '"' + key + '"'); }
      },
      onProgress: function (sent, total) { row.progress(sent, total); },
      onShouldRetry: function (err) {
        var res = err.originalResponse;
        var status = res ? res.getStatus() : 0;
        var retry = status === 0 || status >= 500 || status === 409 || status === 423;
        if (retry) {
          row.state('Verbindung unterbrochen – das Hochladen wird automatisch fortgesetzt …');
        }
        return retry;
      },
      onError: function (err) {
        setBusy(-1);
        var res = err && err.originalResponse;
        if (res && res.getStatus() === 422) {
          // The key names another file's upload: the next try gets a new one.
          if (keyName) { dropKey(keyName); }
          key = keyName ? loadKey(keyName) : newKey();
        }
        row.state('Nicht hochgeladen: ' + problemText(err), true);
        row.clearButtons();
        row.button('Erneut versuchen', function () {
          row.clearButtons();
          addControls();
          setBusy(1);
          upload.start();
        });
        announce('Die Datei „' + file.name + '“ wurde nicht hochgeladen. ' + problemText(err));
      },
      onSuccess: function () {
        setBusy(-1);
        if (keyName) { dropKey(keyName); }
        row.bar.value = 100;
        row.bar.textContent = '100 %';
        row.state('Fertig hochgeladen (' + size(file.size) + ')');
        row.li.setAttribute('data-state', 'complete');
        row.li.setAttribute('data-upload-id', uploadIdOf(upload.url));
        row.clearButtons();
        row.button('Entfernen', function () { terminate(uploadIdOf(upload.url), row, file.name); }, true);
        announce('Die Datei „' + file.name + '“ ist vollständig hochgeladen.');
      }
    });

    function addControls() {
      var pause = row.button('Anhalten', function () {
        if (!paused) {
          paused = true;
          upload.abort();
          setBusy(-1);
          pause.textContent = 'Fortsetzen';
          row.state('Angehalten bei ' + size(Math.round(row.bar.value / 100 * file.size)) + ' – mit „Fortsetzen“ geht es weiter.');
          announce('Hochladen von „' + file.name + '“ angehalten.');
        } else {
          paused = false;
          setBusy(1);
          pause.textContent = 'Anhalten';
          row.state('Wird fortgesetzt …');
          upload.start();
          announce('Hochladen von „' + file.name + '“ wird fortgesetzt.');
        }
      }, true);
      row.button('Abbrechen und entfernen', function () {
        upload.abort(true).then(function () {
          if (keyName) { dropKey(keyName); }
          if (row.li.parentNode) { row.li.parentNode.removeChild(row.li); }
          if (!paused) { setBusy(-1); }
          announce('Hochladen von „' + file.name + '“ abgebrochen.');
          input.focus();
        }).catch(function () {
          row.state('Die Datei konnte nicht entfernt werden. Bitte versuchen Sie es erneut.', true);
        });
      }, true);
    }

    Promise.resolve(upload.options.fingerprint(file, upload.options)).then(function (fp) {
      if (fp) {
        keyName = KEY_PREFIX + fp;
        key = loadKey(keyName);
      }
    }, function () { /* no fingerprint: the page-lived key stays */ }).then(function () {
      return upload.findPreviousUploads();
    }).then(function (previous) {
      var existing = null;
      if (previous.length > 0) {
        upload.resumeFromPreviousUpload(previous[0]);
        var id = uploadIdOf(previous[0].uploadUrl);
        existing = id ? list.querySelector('li[data-upload-id="' + CSS.escape(id) + '"]') : null;
      }
      row = new Row(file.name, existing);
      row.state(previous.length > 0 ? 'Wird fortgesetzt …' : 'Wird gestartet …');
      addControls();
      setBusy(1);
      upload.start();
      announce('Die Datei „' + file.name + '“ wird hochgeladen.');
    });
  }

  function startAll(files) {
    for (var i = 0; i < files.length; i++) { start(files[i]); }
  }

  input.addEventListener('change', function () {
    startAll(Array.prototype.slice.call(input.files));
    input.value = '';
  });

  ['dragenter', 'dragover'].forEach(function (type) {
    drop.addEventListener(type, function (e) {
      e.preventDefault();
      drop.classList.add('dropzone--active');
    });
  });
  ['dragleave', 'drop'].forEach(function (type) {
    drop.addEventListener(type, function (e) {
      e.preventDefault();
      drop.classList.remove('dropzone--active');
    });
  });
  drop.addEventListener('drop', function (e) {
    if (e.dataTransfer && e.dataTransfer.files) { startAll(Array.prototype.slice.call(e.dataTransfer.files)); }
  });

  /* Files listed by the server: unfinished ones get a remove button. */
  Array.prototype.forEach.call(list.querySelectorAll('li[data-upload-id]'), function (li) {
    var state = li.getAttribute('data-state');
    if (state === 'infected') { return; }
    var name = li.querySelector('.upload__name').textContent;
    var row = { li: li, state: function (t, bad) {
      var s = li.querySelector('.upload__state');
      s.textContent = t;
      s.className = 'upload__state' + (bad ? ' upload__state--error' : '');
    } };
    var actions = el('div', 'upload__actions');
    var b = el('button', 'button button--small button--secondary', 'Entfernen');
    b.type = 'button';
    b.addEventListener('click', function () { terminate(li.getAttribute('data-upload-id'), row, name); });
    actions.appendChild(b);
    li.appendChild(actions);
  });

  /* Autosave of the form fields. */
  var fields = ['case_type', 'subject', 'message', 'phone'];
  var timer = null;
  var pending = null;

  function showErrors(errors) {
    fields.forEach(function (f) {
      var inputEl = document.getElementById('f-' + f);
      var wrap = inputEl.closest('.field');
      var id = 'f-' + f + '-fehler';
      var msgEl = document.getElementById(id);
      var msg = errors && errors[f];
      if (msg) {
        if (!msgEl) {
          msgEl = el('p', 'field__error');
          msgEl.id = id;
          inputEl.parentNode.insertBefore(msgEl, inputEl);
        }
        msgEl.textContent = msg;
        inputEl.setAttribute('aria-invalid', 'true');
        wrap.classList.add('field--error');
        var ids = (inputEl.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        if (ids.indexOf(id) < 0) { ids.push(id); }
        inputEl.setAttribute('aria-describedby', ids.join(' '));
      } else if (msgEl) {
        msgEl.parentNode.removeChild(msgEl);
        inputEl.removeAttribute('aria-invalid');
        wrap.classList.remove('field--error');
        inputEl.setAttribute('aria-describedby', (inputEl.getAttribute('aria-describedby') || '').split(' ').filter(function (x) { return x && x !== id; }).join(' '));
      }
    });
  }

  function save() {
    timer = null;
    var body = {};
    fields.forEach(function (f) { body[f] = document.getElementById('f-' + f).value; });
    autosave.textContent = 'Wird gespeichert …';
    pending = fetch(draftURL, {
      method: 'PUT', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (res.ok) {
          showErrors(data.errors || {});
          var now = new Date();
          autosave.textContent = 'Automatisch gespeichert um ' + ('0' + now.getHours()).slice(-2) + ':' + ('0' + now.getMinutes()).slice(-2) + ' Uhr.';
        } else if (res.status === 401) {
          autosave.textContent = 'Ihre Sitzung ist abgelaufen. Bitte melden Sie sich mit Ihrer PIN erneut an; Ihre letzte Änderung ist nicht gespeichert.';
        } else {
          showErrors(data.errors || {});
          autosave.textContent = 'Nicht gespeichert: ' + (data.detail || data.title || 'unbekannter Fehler') ;
        }
      });
    }).catch(function () {
      autosave.textContent = 'Nicht gespeichert: keine Verbindung. Ihre Eingaben werden gespeichert, sobald die Verbindung wieder besteht.';
      timer = window.setTimeout(save, 5000);
    });
  }

  function schedule(delay) {
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(save, delay);
  }

  fields.forEach(function (f) {
    var e = document.getElementById('f-' + f);
    e.addEventListener('input', function () {
      if (!timer) { autosave.textContent = 'Ihre Änderungen werden gleich gespeichert …'; }
      schedule(800);
    });
    e.addEventListener('change', function () { schedule(0); });
  });

  // Leaving the page with a change not yet saved: send it on the way out.
  window.addEventListener('pagehide', function () {
    if (!timer) { return; }
    window.clearTimeout(timer);
    timer = null;
    var body = {};
    fields.forEach(function (f) { body[f] = document.getElementById('f-' + f).value; });
    fetch(draftURL, {
      method: 'PUT', credentials: 'same-origin', keepalive: true,
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body)
    }).catch(function () { /* the page is gone; nothing to tell */ });
  });

  form.addEventListener('submit', function (e) {
    if (running > 0) {
      e.preventDefault();
      announce('Bitte warten Sie, bis alle Dateien fertig hochgeladen sind, und senden Sie dann ab.');
      autosave.textContent = 'Es werden noch Dateien hochgeladen. Bitte warten Sie, bis alle fertig sind, und senden Sie dann ab.';
    }
  });
})();
