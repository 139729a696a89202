package web

import (
	"bytes"
	"fmt"
	"html"
	"mime/multipart"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
)

type formFile struct {
	field, name string
	content     []byte
}

// postMultipart sends a multipart form as a browser does for a form with
// enctype="multipart/form-data"; fields are name, value pairs.
func (b *browser) postMultipart(path string, files []formFile, fields ...string) (int, string, string) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, f.field, strings.ReplaceAll(f.name, `"`, "%22")))
		h.Set("Content-Type", "application/octet-stream")
		pw, _ := mw.CreatePart(h)
		pw.Write(f.content)
	}
	mw.Close()
	req := httptest.NewRequest("POST", path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, body := b.do(req)
	return resp.StatusCode, resp.Header.Get("Location"), body
}

var reFormAction = regexp.MustCompile(`<form method="post" action="([^"]*)" enctype="multipart/form-data"`)

// multipartAction returns the action of the page's file form (it carries
// the CSRF token in its query).
func multipartAction(t *testing.T, page string) string {
	t.Helper()
	m := reFormAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no multipart form on the page")
	}
	return html.UnescapeString(m[1])
}

// A thread between Erika and the Krankengeld team: hostile text stays text
// on both sides, the reply carries an attachment Erika can download, and
// nobody outside the team sees the thread.
func TestPostfachPagesBothSides(t *testing.T) {
	w := newUIWorld(t)
	th := w.thread("Frage "+hostile, "Guten Tag,\n"+hostile)
	sachb := w.as("sachb")

	resp, page := sachb.get("/team")
	if resp.StatusCode != 200 {
		t.Fatalf("team inbox: %d", resp.StatusCode)
	}
	checkPage(t, "Team-Postfach", page)
	assertEscaped(t, "Team-Postfach", page)
	if !strings.Contains(page, `href="/team/nachrichten/`+th.ID+`"`) || !strings.Contains(page, "1 ungelesen") {
		t.Errorf("team inbox does not list the unread thread")
	}
	if !strings.Contains(page, `aria-current="page"`) {
		t.Errorf("navigation does not mark the current page")
	}
	resp, page = sachb.get("/team/nachrichten/" + th.ID)
	if resp.StatusCode != 200 {
		t.Fatalf("thread: %d", resp.StatusCode)
	}
	checkPage(t, "Unterhaltung (Team)", page)
	assertEscaped(t, "Unterhaltung (Team)", page)
	if !strings.Contains(page, `href="/team/konten/`+w.people["erika"].AccountID+`"`) {
		t.Errorf("thread does not link the person's account for the caseworker")
	}

	// Others: another team's caseworker, the auditor, and Erika on the team path.
	for _, tc := range []struct{ who, path string }{
		{"hilfe", "/team/nachrichten/" + th.ID},
		{"pruefer", "/team"},
		{"erika", "/team/nachrichten/" + th.ID},
		{"sachb", "/postfach/" + th.ID},
	} {
		resp, page := w.as(tc.who).get(tc.path)
		if resp.StatusCode != 404 || !strings.Contains(page, "Seite nicht gefunden") || strings.Contains(page, "Frage") {
			t.Errorf("%s on %s: %d, want the 404 page", tc.who, tc.path, resp.StatusCode)
		}
	}

	action := multipartAction(t, page)
	if !strings.Contains(action, "_csrf=") {
		t.Fatalf("reply form action has no CSRF token: %s", action)
	}
	// Without the token nothing is sent.
	if code, _, _ := sachb.postMultipart("/team/nachrichten/"+th.ID+"/antwort", nil, "text", "ohne Token"); code != 403 {
		t.Errorf("reply without CSRF token: %d, want 403", code)
	}
	// A refused file type keeps the text and names the problem at the file field.
	code, _, page := sachb.postMultipart(action, []formFile{{"anhaenge", "tool.exe", append([]byte("MZ\x90\x00"), make([]byte, 300)...)}}, "_csrf", "x", "text", "Bitte beachten Sie den Anhang.")
	if code != 415 || !strings.Contains(page, `<a href="#f-anhaenge">`) || !strings.Contains(page, ">Bitte beachten Sie den Anhang.</textarea>") {
		t.Errorf("refused file: %d %s", code, page)
	}
	// A reply without text keeps the stored file for the next try.
	pdf := pdfBytes(3000)
	code, _, page = sachb.postMultipart(action, []formFile{{"anhaenge", hostileName, pdf}}, "text", "")
	if code != 422 || !strings.Contains(page, `<a href="#f-text">Bitte geben Sie einen Text ein.</a>`) {
		t.Fatalf("reply without text: %d %s", code, page)
	}
	checkPage(t, "Antwort mit Fehler", page)
	assertEscaped(t, "Antwort mit Fehler (Anhang)", page)
	kept := regexp.MustCompile(`name="anhang" value="([^"]+)"`).FindStringSubmatch(page)
	if kept == nil {
		t.Fatalf("the stored file is not kept for the next try")
	}
	code, loc, _ := sachb.postMultipart(multipartAction(t, page), nil, "text", "Hier ist der Bescheid.\n"+hostile, "anhang", kept[1], "anhang-name-"+kept[1], "x")
	if code != 303 || !strings.HasPrefix(loc, "/team/nachrichten/"+th.ID) {
		t.Fatalf("reply: %d %q", code, loc)
	}

	erika := w.as("erika")
	resp, page = erika.get("/postfach")
	checkPage(t, "Postfach", page)
	assertEscaped(t, "Postfach", page)
	if resp.StatusCode != 200 || !strings.Contains(page, "1 ungelesen") {
		t.Errorf("Erika's Postfach does not show the unread reply: %d", resp.StatusCode)
	}
	_, page = erika.get("/postfach/" + th.ID)
	checkPage(t, "Unterhaltung (Versicherte)", page)
	assertEscaped(t, "Unterhaltung (Versicherte)", page)
	link := regexp.MustCompile(`<a href="(/api/postfach/attachments/[^"]+)" download>`).FindStringSubmatch(page)
	if link == nil || !strings.Contains(page, "Hier ist der Bescheid.") || !strings.Contains(page, "Ihre Krankenkasse (Krankengeld)") {
		t.Fatalf("reply or its attachment not shown to Erika: %s", page)
	}
	req := httptest.NewRequest("GET", link[1], nil)
	resp, body := erika.do(req)
	if resp.StatusCode != 200 || body != string(pdf) {
		t.Errorf("attachment download: %d, %d bytes", resp.StatusCode, len(body))
	}
	// Erika's own reply goes back to the team.
	code, loc, _ = erika.postMultipart(multipartAction(t, page), nil, "text", "Danke!")
	if code != 303 || !strings.HasPrefix(loc, "/postfach/"+th.ID) {
		t.Errorf("Erika's reply: %d %q", code, loc)
	}
	// Erika files the thread in her archive and gets it back.
	_, page = erika.get("/postfach/" + th.ID)
	resp, _ = erika.post("/postfach/"+th.ID+"/ablage", "_csrf", csrfOf(t, page), "archiv", "ja")
	if resp.StatusCode != 303 {
		t.Fatalf("archive: %d", resp.StatusCode)
	}
	if _, page := erika.get("/postfach"); strings.Contains(page, "/postfach/"+th.ID) {
		t.Errorf("archived thread still in the inbox")
	}
	if _, page := erika.get("/postfach?ablage=archiv"); !strings.Contains(page, "/postfach/"+th.ID) {
		t.Errorf("archived thread not in the archive")
	}
	_, teamPage := sachb.get("/team")
	if resp, _ := sachb.post("/postfach/"+th.ID+"/ablage", "_csrf", csrfOf(t, teamPage), "archiv", "ja"); resp.StatusCode != 404 {
		t.Errorf("caseworker archiving an owner's thread: %d", resp.StatusCode)
	}
	// Closing the thread removes the reply form.
	_, page = sachb.get("/team/nachrichten/" + th.ID)
	resp, _ = sachb.post("/team/nachrichten/"+th.ID+"/status", "_csrf", csrfOf(t, page), "status", "closed")
	if resp.StatusCode != 303 {
		t.Fatalf("close: %d", resp.StatusCode)
	}
	_, page = erika.get("/postfach/" + th.ID)
	if strings.Contains(page, "Antwort senden") || !strings.Contains(page, "Diese Unterhaltung ist abgeschlossen.") {
		t.Errorf("closed thread still offers a reply")
	}
}

func TestPostfachCompose(t *testing.T) {
	w := newUIWorld(t)
	erika := w.as("erika")
	resp, page := erika.get("/postfach/neu")
	if resp.StatusCode != 200 {
		t.Fatalf("compose: %d", resp.StatusCode)
	}
	checkPage(t, "Neue Nachricht", page)
	for _, want := range []string{`<label for="f-thema">`, `<option value="krankengeld"`, `<label for="f-anhaenge">`} {
		if !strings.Contains(page, want) {
			t.Errorf("compose page lacks %q", want)
		}
	}
	action := multipartAction(t, page)
	code, _, page := erika.postMultipart(action, nil, "thema", "", "betreff", hostile, "text", "Hallo")
	if code != 422 || !strings.Contains(page, `<a href="#f-thema">`) || !strings.Contains(page, `value="&lt;script&gt;`) {
		t.Errorf("compose without topic: %d", code)
	}
	code, _, page = erika.postMultipart(action, nil, "thema", "krankengeld", "betreff", "", "text", "Hallo")
	if code != 422 || !strings.Contains(page, `<a href="#f-betreff">Bitte geben Sie einen Betreff ein.</a>`) {
		t.Errorf("compose without subject: %d", code)
	}
	code, loc, _ := erika.postMultipart(action, []formFile{{"anhaenge", "befund.pdf", pdfBytes(2000)}}, "thema", "krankengeld", "betreff", "Krankengeld", "text", "Anbei mein Befund.")
	if code != 303 || !strings.HasPrefix(loc, "/postfach/") {
		t.Fatalf("compose: %d %q", code, loc)
	}
	_, page = w.as("sachb").get("/team")
	if !strings.Contains(page, ">Krankengeld</a>") {
		t.Errorf("new thread not in the team inbox")
	}
}

// The list pages: 26 threads make two pages, and the link to the second
// keeps the filter.
func TestPostfachListPaging(t *testing.T) {
	w := newUIWorld(t)
	for i := 0; i < 26; i++ {
		w.thread(fmt.Sprintf("Frage %02d", i), "Text")
	}
	erika := w.as("erika")
	_, page := erika.get("/postfach?status=open")
	if n := strings.Count(page, ">Frage "); n != 25 {
		t.Fatalf("first page: %d threads", n)
	}
	m := regexp.MustCompile(`<a href="\?([^"]+)">Ältere Nachrichten</a>`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(m[1], "status=open") {
		t.Fatalf("no link to older messages with the filter: %v", m)
	}
	_, page = erika.get("/postfach?" + html.UnescapeString(m[1]))
	if n := strings.Count(page, ">Frage "); n != 1 || !strings.Contains(page, ">Frage 00<") {
		t.Errorf("second page: %d threads", n)
	}
}
