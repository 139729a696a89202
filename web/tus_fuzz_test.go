package web

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"postbox/intake"
)

// tus creation headers through the real router and a PIN session: any
// Tus-Resumable, Upload-Length, Upload-Defer-Length, Upload-Concat and
// Upload-Metadata answer cleanly (never 5xx; a refusal is German
// problem+json), and a created upload reports back the length asked for
// and a cleaned file name.
func FuzzTusCreate(f *testing.F) {
	meta := func(name, typ string) string {
		return "filename " + base64.StdEncoding.EncodeToString([]byte(name)) + ",filetype " + base64.StdEncoding.EncodeToString([]byte(typ))
	}
	f.Add("1.0.0", "1000", "", "", meta("AU März.pdf", "application/pdf"))
	f.Add("1.0.0", "", "1", "partial", "")
	f.Add("1.0.0", "", "", "final;/api/uploads/0123456789abcdef0123456789abcdef /api/uploads/x", "")
	f.Add("1.0.0", "10", "", "", meta("../../etc/passwd.pdf", "application/pdf"))
	f.Add("1.0.0", "10", "", "", meta("rechnung\u202Efdp.exe", "application/x-msdownload"))
	f.Add("1.0.0", "10", "", "", meta("a\x00b\r\n.pdf", ""))
	f.Add("1.0.0", "-1", "", "", "filename !!!")
	f.Add("1.0.0", "99999999999999999999", "", "", "")
	f.Add("0.2.2", "10", "", "", "")
	f.Add("1.0.0", "10", "1", "", "")
	w := newFullWorld(f)
	token, _ := w.pinSession(w.erika)
	f.Fuzz(func(t *testing.T, version, length, deferLength, concat, metadata string) {
		w.t = t // inputs run one after the other in each fuzz process
		hdr := map[string]string{"Tus-Resumable": version, "Upload-Length": length, "Upload-Defer-Length": deferLength,
			"Upload-Concat": concat, "Upload-Metadata": metadata}
		for k, v := range hdr {
			if v == "" {
				delete(hdr, k)
			}
		}
		resp, body := w.do(fullRequest{method: "POST", path: TusPath, pinToken: token, header: hdr})
		if resp.StatusCode >= 500 {
			t.Fatalf("create with %q: %d %s", hdr, resp.StatusCode, body)
		}
		if resp.StatusCode != 201 {
			var p struct{ Title, Detail string }
			if json.Unmarshal(body, &p) != nil || p.Title == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("refusal %d of %q is no problem+json: %q", resp.StatusCode, hdr, body)
			}
			return
		}
		if version != intake.TusVersion {
			t.Fatalf("created with Tus-Resumable %q", version)
		}
		loc := resp.Header.Get("Location")
		head, _ := w.do(fullRequest{method: "HEAD", path: loc, pinToken: token, header: map[string]string{"Tus-Resumable": "1.0.0"}})
		switch {
		case head.StatusCode != 200:
			t.Fatalf("HEAD of the new upload: %d", head.StatusCode)
		case length != "" && head.Header.Get("Upload-Length") != strings.TrimLeft(length, "0"):
			t.Fatalf("Upload-Length %q came back as %q", length, head.Header.Get("Upload-Length"))
		case length == "" && strings.TrimSpace(concat) == "" && head.Header.Get("Upload-Defer-Length") != "1":
			t.Fatalf("deferred upload without Upload-Defer-Length: %v", head.Header)
		}
		_, list := w.do(fullRequest{method: "GET", path: TusPath, pinToken: token})
		var ups struct {
			Uploads []struct{ ID, Filename string }
		}
		if err := json.Unmarshal(list, &ups); err != nil {
			t.Fatalf("upload list: %v %s", err, list)
		}
		id := loc[strings.LastIndexByte(loc, '/')+1:]
		for _, u := range ups.Uploads {
			if u.ID == id {
				checkSafeName(t, u.Filename)
			}
		}
		// Keep the quota free for the next input.
		if del, body := w.do(fullRequest{method: "DELETE", path: loc, pinToken: token, header: map[string]string{"Tus-Resumable": "1.0.0"}}); del.StatusCode != 204 {
			t.Fatalf("DELETE of the new upload: %d %s", del.StatusCode, body)
		}
	})
}

func checkSafeName(t *testing.T, name string) {
	t.Helper()
	if strings.ContainsAny(name, `/\`) || name == "." || name == ".." || !utf8.ValidString(name) {
		t.Fatalf("unsafe file name %q", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			t.Fatalf("file name %q keeps %U", name, r)
		}
	}
}

// The download header for any stored file name: one line of printable
// ASCII (no header injection), a quoted fallback without quote, backslash
// or percent, and a filename* that decodes to a name without directories
// and without control or bidi characters.
func FuzzPINContentDisposition(f *testing.F) {
	for _, s := range []string{"AU März.pdf", "../../etc/passwd", "a\"b\\c%d;e.pdf", "x\r\nSet-Cookie: a=b", "rechnung\u202Efdp.exe", "\xff\xfe", "",
		"..", strings.Repeat("ß", 300), "C:\\temp\\befund.pdf", "日本語.pdf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		v := PINContentDisposition(name)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("header for %q has byte %#x: %q", name, v[i], v)
			}
		}
		rest, ok := strings.CutPrefix(v, `attachment; filename="`)
		if !ok {
			t.Fatalf("header for %q: %q", name, v)
		}
		fallback, star, ok := strings.Cut(rest, `"; filename*=UTF-8''`)
		if !ok || strings.ContainsAny(fallback, `"\%`) || strings.ContainsAny(star, `"; `) {
			t.Fatalf("header for %q: %q", name, v)
		}
		decoded, err := url.PathUnescape(star)
		if err != nil {
			t.Fatalf("filename* of %q does not decode: %q", name, star)
		}
		checkSafeName(t, decoded)
	})
}
