package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"postbox/auth"
)

var (
	reActivationCode = regexp.MustCompile(`id="aktivierungscode">(\d{4} \d{4})<`)
	reSetupSecret    = regexp.MustCompile(`id="schluessel">([A-Z2-7 ]+)<`)
	reSetupQR        = regexp.MustCompile(`<img src="(/konto/geraete/[^"/]+/qr\.png)"`)
)

// deviceOf returns the account's device with that name, or false.
func (w *uiWorld) deviceOf(name, device string) (auth.DeviceInfo, bool) {
	w.t.Helper()
	list, err := w.auth.ListDevices(context.Background(), w.people[name])
	if err != nil {
		w.t.Fatal(err)
	}
	for _, d := range list {
		if d.Name == device {
			return d, true
		}
	}
	return auth.DeviceInfo{}, false
}

// wrongCode is a 6-digit code that none of the accepted time steps of
// secret produces right now.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	valid := map[string]bool{}
	now := time.Now()
	for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		c, err := totp.GenerateCode(secret, now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// Adding an authenticator app in the browser (seed 000/001): "Gerät
// hinzufügen" gives the activation code, "Gerät aktivieren" takes it with
// the login and a PIN, "Gerät einrichten" shows the QR code and the secret
// and takes the app's first code. Only the session that started it sees
// the secret; a wrong or replayed code leaves nothing active.
func TestGeraetHinzufuegenAktivierenBestaetigen(t *testing.T) {
	w := newUIWorld(t)
	stepUpCode := w.withTOTP("erika", "Sommer#2026x")
	erika := w.as("erika")
	_, page := erika.get("/konto")
	csrf := csrfOf(t, page)
	if resp, _ := erika.post("/konto/bestaetigen", "_csrf", csrf, "method", "totp", "code", stepUpCode()); resp.StatusCode != 303 {
		t.Fatalf("step-up: %d", resp.StatusCode)
	}
	resp, page := erika.post("/konto/geraete", "_csrf", csrf, "device_name", "Mein Smartphone")
	m := reActivationCode.FindStringSubmatch(page)
	if resp.StatusCode != 201 || m == nil {
		t.Fatalf("add device: %d", resp.StatusCode)
	}
	activation := m[1]
	if !strings.Contains(page, `href="/konto/geraete/aktivieren"`) {
		t.Errorf("the activation code page does not lead on to „Gerät aktivieren“")
	}

	resp, page = erika.get("/konto/geraete/aktivieren")
	if resp.StatusCode != 200 {
		t.Fatalf("Gerät aktivieren: %d", resp.StatusCode)
	}
	checkPage(t, "Gerät aktivieren", page)
	for _, want := range []string{`<label for="f-login">Benutzername oder E-Mail</label>`, `<label for="f-activation_code">Aktivierungscode</label>`,
		`<label for="f-pin">6-stellige PIN</label>`, `<label for="f-pin_repeat">`, `<legend>`, `value="erika"`,
		`name="activation_code" value="" class="input--code" inputmode="numeric" autocomplete="one-time-code"`} {
		if !strings.Contains(page, want) {
			t.Errorf("Gerät aktivieren lacks %q", want)
		}
	}
	csrf = csrfOf(t, page)
	if resp, _ := erika.post("/konto/geraete/aktivieren", "login", "erika", "activation_code", activation, "pin", "482915", "pin_repeat", "482915"); resp.StatusCode != 403 {
		t.Errorf("activation without CSRF token: %d, want 403", resp.StatusCode)
	}
	for _, tc := range []struct {
		name                  string
		login, code, pin, rep string
		status                int
		field, msg            string
	}{
		{"PIN too short", "erika", activation, "48291", "48291", 422, "pin", "genau 6 Ziffern"},
		{"PIN with a letter", "erika", activation, "48291a", "48291a", 422, "pin", "genau 6 Ziffern"},
		{"PINs differ", "erika", activation, "482915", "482916", 422, "pin_repeat", "Die beiden PIN-Eingaben stimmen nicht überein"},
		{"no login", "", activation, "482915", "482915", 422, "login", "Benutzernamen oder Ihre E-Mail-Adresse"},
		{"wrong activation code", "erika", "1111 1111", "482915", "482915", 400, "activation_code", "Der Aktivierungscode passt nicht"},
		{"another user's login", "sachb", activation, "482915", "482915", 400, "activation_code", "Der Aktivierungscode passt nicht"},
	} {
		resp, page := erika.post("/konto/geraete/aktivieren", "_csrf", csrf, "login", tc.login, "activation_code", tc.code, "pin", tc.pin, "pin_repeat", tc.rep)
		if resp.StatusCode != tc.status || !strings.Contains(page, `<a href="#f-`+tc.field+`">`) || !strings.Contains(page, tc.msg) {
			t.Errorf("%s: %d, want %d with %q at %s", tc.name, resp.StatusCode, tc.status, tc.msg, tc.field)
		}
		if strings.Contains(page, "482915") || strings.Contains(page, "48291a") {
			t.Errorf("%s: the page shows the PIN again", tc.name)
		}
	}
	resp, _ = erika.post("/konto/geraete/aktivieren", "_csrf", csrf, "login", "erika", "activation_code", activation, "pin", "482915", "pin_repeat", "482915")
	setup := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(setup, "/konto/geraete/") || !strings.HasSuffix(setup, "/einrichten") {
		t.Fatalf("activation: %d %q", resp.StatusCode, setup)
	}

	resp, page = erika.get(setup)
	if resp.StatusCode != 200 {
		t.Fatalf("Gerät einrichten: %d", resp.StatusCode)
	}
	checkPage(t, "Gerät einrichten", page)
	sm, qm := reSetupSecret.FindStringSubmatch(page), reSetupQR.FindStringSubmatch(page)
	if sm == nil || qm == nil {
		t.Fatalf("setup page without secret or QR code: %s", page)
	}
	secret := strings.ReplaceAll(sm[1], " ", "")
	for _, want := range []string{`<label for="f-code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`, `<legend>Code aus der Authenticator-App</legend>`, `alt="QR-Code`} {
		if !strings.Contains(page, want) {
			t.Errorf("Gerät einrichten lacks %q", want)
		}
	}
	resp, png := erika.get(qm[1])
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Cache-Control") != "no-store" ||
		!bytes.HasPrefix([]byte(png), []byte("\x89PNG")) {
		t.Errorf("QR code: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	confirmCSRF := csrfOf(t, page)

	// Another account, and Erika's own other session, see nothing of it.
	for name, b := range map[string]*browser{"another account": w.as("sachb"), "another session": w.as("erika")} {
		_, p := b.get("/konto")
		bc := csrfOf(t, p)
		if resp, _ := b.get(setup); resp.StatusCode != 404 {
			t.Errorf("%s: setup page %d, want 404", name, resp.StatusCode)
		}
		if resp, _ := b.get(qm[1]); resp.StatusCode != 404 {
			t.Errorf("%s: QR code %d, want 404", name, resp.StatusCode)
		}
		code, _ := totp.GenerateCode(secret, time.Now())
		if resp, _ := b.post(setup, "_csrf", bc, "code", code); resp.StatusCode != 404 {
			t.Errorf("%s: confirm %d, want 404", name, resp.StatusCode)
		}
	}

	if resp, _ := erika.post(setup, "code", "123456"); resp.StatusCode != 403 {
		t.Errorf("confirm without CSRF token: %d, want 403", resp.StatusCode)
	}
	resp, page = erika.post(setup, "_csrf", confirmCSRF, "code", "12a456")
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-code">Bitte geben Sie den 6-stelligen Code ein`) {
		t.Errorf("code with a letter: %d", resp.StatusCode)
	}
	resp, page = erika.post(setup, "_csrf", confirmCSRF, "code", wrongCode(t, secret))
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">Der Code ist nicht richtig`) {
		t.Errorf("wrong code: %d", resp.StatusCode)
	}
	if !strings.Contains(page, sm[1]) {
		t.Errorf("after a wrong code the secret is not shown again")
	}
	if d, ok := w.deviceOf("erika", "Mein Smartphone"); !ok || d.Status == auth.DeviceActive {
		t.Errorf("device after a wrong code: %+v %v, want requested", d, ok)
	}

	first, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = erika.post(setup, "_csrf", confirmCSRF, "code", first[:3]+" "+first[3:])
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/konto?hinweis=geraet-aktiviert#geraete" {
		t.Fatalf("confirm: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	d, ok := w.deviceOf("erika", "Mein Smartphone")
	if !ok || d.Status != auth.DeviceActive {
		t.Fatalf("device after confirming: %+v %v, want active", d, ok)
	}
	resp, page = erika.get("/konto?hinweis=geraet-aktiviert")
	today := germanDate(time.Now())
	if resp.StatusCode != 200 || !strings.Contains(page, "Das Gerät ist eingerichtet") {
		t.Errorf("Mein Konto after confirming: %d", resp.StatusCode)
	}
	if !strings.Contains(page, "<tr><td>Mein Smartphone</td><td>"+auth.DeviceActive.German()+"</td><td>"+today+"</td><td>"+today+"</td>") {
		t.Errorf("the new device is not listed with name, status, added and last used")
	}

	// The setup is over; its code cannot be used again, neither here nor
	// as a security code.
	if resp, _ := erika.post(setup, "_csrf", confirmCSRF, "code", first); resp.StatusCode != 404 {
		t.Errorf("confirm replayed: %d, want 404", resp.StatusCode)
	}
	if resp, _ := erika.get(qm[1]); resp.StatusCode != 404 {
		t.Errorf("QR code after confirming: %d, want 404", resp.StatusCode)
	}
	resp, page = erika.post("/konto/bestaetigen", "_csrf", confirmCSRF, "method", "totp", "code", first)
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">Der Sicherheitscode ist nicht richtig`) {
		t.Errorf("step-up with the replayed first code: %d, want 400", resp.StatusCode)
	}
}

// A fresh activation code is one-time: once used it does not start a
// second setup.
func TestGeraetAktivierenCodeOnlyOnce(t *testing.T) {
	w := newUIWorld(t)
	stepUpCode := w.withTOTP("erika", "Sommer#2026x")
	erika := w.as("erika")
	_, page := erika.get("/konto")
	csrf := csrfOf(t, page)
	erika.post("/konto/bestaetigen", "_csrf", csrf, "method", "totp", "code", stepUpCode())
	_, page = erika.post("/konto/geraete", "_csrf", csrf, "device_name", "Tablet")
	m := reActivationCode.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no activation code")
	}
	resp, _ := erika.post("/konto/geraete/aktivieren", "_csrf", csrf, "login", "erika", "activation_code", m[1], "pin", "135790", "pin_repeat", "135790")
	setup := resp.Header.Get("Location")
	_, page = erika.get(setup)
	sm := reSetupSecret.FindStringSubmatch(page)
	if sm == nil {
		t.Fatalf("no secret on %s", setup)
	}
	code, _ := totp.GenerateCode(strings.ReplaceAll(sm[1], " ", ""), time.Now())
	if resp, _ := erika.post(setup, "_csrf", csrf, "code", code); resp.StatusCode != 303 {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	resp, page = erika.post("/konto/geraete/aktivieren", "_csrf", csrf, "login", "erika", "activation_code", m[1], "pin", "135790", "pin_repeat", "135790")
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-activation_code">Der Aktivierungscode passt nicht`) {
		t.Errorf("used activation code again: %d, want 400", resp.StatusCode)
	}
}

// replica is a second web server over the world's database, with its own
// auth service and UI: nothing in memory is shared with w.srv.
func (w *uiWorld) replica() *Server {
	w.t.Helper()
	svc, err := auth.NewService(w.db.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: w.key, ClientAddrKey: w.key, SMS: w.sms})
	if err != nil {
		w.t.Fatal(err)
	}
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.UseSessions(svc, SessionOptions{})
	desk := NewPINIntake(PINIntakeOptions{Service: w.pin, BaseURL: "http://example.com", ClientKey: w.key})
	desk.Mount(srv.App())
	if _, err := MountUI(srv, UIOptions{Kassen: w.db, Auth: svc, PIN: desk, Mailbox: w.mail, Vorgaenge: w.vg, People: w.db}); err != nil {
		w.t.Fatal(err)
	}
	return srv
}

// The pending setup lives in the database: a device activated on one
// replica is shown (same secret, QR code) and confirmed on another, still
// only for the session that activated it; the activation that created the
// secret is audited.
func TestGeraetEinrichtenAufAndererInstanz(t *testing.T) {
	w := newUIWorld(t)
	stepUpCode := w.withTOTP("erika", "Sommer#2026x")
	erika := w.as("erika")
	_, page := erika.get("/konto")
	csrf := csrfOf(t, page)
	erika.post("/konto/bestaetigen", "_csrf", csrf, "method", "totp", "code", stepUpCode())
	_, page = erika.post("/konto/geraete", "_csrf", csrf, "device_name", "Zweitgerät")
	m := reActivationCode.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no activation code")
	}
	resp, _ := erika.post("/konto/geraete/aktivieren", "_csrf", csrf, "login", "erika", "activation_code", m[1], "pin", "246801", "pin_repeat", "246801")
	setup := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasSuffix(setup, "/einrichten") {
		t.Fatalf("activation: %d %q", resp.StatusCode, setup)
	}
	_, page = erika.get(setup)
	sm := reSetupSecret.FindStringSubmatch(page)
	if sm == nil {
		t.Fatalf("no secret on replica A: %s", page)
	}

	other := w.replica()
	erikaB := &browser{t: t, s: other, cookies: erika.cookies}
	resp, pageB := erikaB.get(setup)
	if resp.StatusCode != 200 {
		t.Fatalf("setup page on replica B: %d, want 200", resp.StatusCode)
	}
	checkPage(t, "Gerät einrichten", pageB)
	smB, qmB := reSetupSecret.FindStringSubmatch(pageB), reSetupQR.FindStringSubmatch(pageB)
	if smB == nil || qmB == nil || smB[1] != sm[1] {
		t.Fatalf("replica B shows another or no secret / QR code: %v %v", smB, qmB)
	}
	if !strings.Contains(pageB, "Zweitgerät") {
		t.Errorf("replica B does not name the device")
	}
	resp, png := erikaB.get(qmB[1])
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || !bytes.HasPrefix([]byte(png), []byte("\x89PNG")) {
		t.Errorf("QR code on replica B: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	secret := strings.ReplaceAll(smB[1], " ", "")

	// Erika's other session on replica B still sees nothing of it.
	token, _, err := w.auth.StartSession(context.Background(), w.people["erika"], auth.StageDone, "")
	if err != nil {
		t.Fatal(err)
	}
	otherSess := newBrowser(t, other)
	otherSess.cookies[SessionCookieName(false)] = token
	_, p := otherSess.get("/konto")
	if resp, _ := otherSess.get(setup); resp.StatusCode != 404 {
		t.Errorf("another session on replica B: setup page %d, want 404", resp.StatusCode)
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	if resp, _ := otherSess.post(setup, "_csrf", csrfOf(t, p), "code", code); resp.StatusCode != 404 {
		t.Errorf("another session on replica B: confirm %d, want 404", resp.StatusCode)
	}
	if d, ok := w.deviceOf("erika", "Zweitgerät"); !ok || d.Status != auth.DeviceRequested {
		t.Fatalf("device after the other session's try: %+v %v, want requested", d, ok)
	}

	csrfB := csrfOf(t, pageB)
	resp, _ = erikaB.post(setup, "_csrf", csrfB, "code", code)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/konto?hinweis=geraet-aktiviert#geraete" {
		t.Fatalf("confirm on replica B: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if d, ok := w.deviceOf("erika", "Zweitgerät"); !ok || d.Status != auth.DeviceActive {
		t.Fatalf("device after confirming on replica B: %+v %v, want active", d, ok)
	}
	// Finished on B, gone on A too.
	if resp, _ := erika.get(setup); resp.StatusCode != 404 {
		t.Errorf("setup page on replica A after confirming on B: %d, want 404", resp.StatusCode)
	}

	d, _ := w.deviceOf("erika", "Zweitgerät")
	events, err := w.db.PendingEvents(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	var requested, created, added int
	for _, e := range events {
		if e.SubjectID != d.ID {
			continue
		}
		switch {
		case e.Type == "auth.device.requested" && strings.Contains(e.Details, `"secret_created"`):
			created++
			if e.ActorID != w.people["erika"].AccountID {
				t.Errorf("secret creation recorded for actor %q", e.ActorID)
			}
		case e.Type == "auth.device.requested":
			requested++
		case e.Type == "auth.device.added":
			added++
		}
	}
	if requested != 1 || created != 1 || added != 1 {
		t.Errorf("device events: %d requested, %d secret created, %d added; want 1 each", requested, created, added)
	}
}
