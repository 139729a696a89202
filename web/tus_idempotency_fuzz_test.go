package web

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// Any Idempotency-Key through the real router and PIN sessions: never 5xx,
// a refusal is German problem+json and creates nothing; a key that is
// accepted names one upload for its owner (the repeat gets the same
// Location), another person's identical key never reaches it, and the key
// with another length answers 422.
func FuzzTusIdempotencyKey(f *testing.F) {
	f.Add(`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "1000")
	f.Add("8e03978e40d543e8bc936894a57f9324", "1000")
	f.Add("short", "10")
	f.Add(strings.Repeat("x", 65), "10")
	f.Add(`""`, "10")
	f.Add(`"`, "10")
	f.Add("schlüssel-0123456789abcdef", "10")
	f.Add("key with spaces 0123456789", "10")
	f.Add("0123456789abcdef", "0")
	f.Add("0123456789abcdef", "99999999999999999999")
	w := newFullWorld(f)
	erika, _ := w.pinSession(w.erika)
	maxTok, _ := w.pinSession(w.max)
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("a.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))
	f.Fuzz(func(t *testing.T, key, length string) {
		w.t = t
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] == 0x7f {
				return // not a valid field value: the HTTP layer refuses it before us
			}
		}
		post := func(token, length string) (int, string, []byte) {
			resp, body := w.do(fullRequest{method: "POST", path: TusPath, pinToken: token, header: map[string]string{
				"Tus-Resumable": "1.0.0", "Idempotency-Key": key, "Upload-Length": length, "Upload-Metadata": meta}})
			if resp.StatusCode >= 500 {
				t.Fatalf("key %q length %q: %d %s", key, length, resp.StatusCode, body)
			}
			if resp.StatusCode != 201 {
				var p struct{ Title, Detail string }
				if json.Unmarshal(body, &p) != nil || p.Detail == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("refusal %d of key %q is no problem+json: %q", resp.StatusCode, key, body)
				}
			}
			return resp.StatusCode, resp.Header.Get("Location"), body
		}
		drop := func(token, loc string) {
			if del, body := w.do(fullRequest{method: "DELETE", path: loc, pinToken: token, header: map[string]string{"Tus-Resumable": "1.0.0"}}); del.StatusCode != 204 && del.StatusCode != 410 {
				t.Fatalf("DELETE %s: %d %s", loc, del.StatusCode, body)
			}
		}
		before := w.uploadCount(t, erika)
		status, loc, body := post(erika, length)
		if status != 201 {
			if w.uploadCount(t, erika) != before {
				t.Fatalf("refused creation (%d %s) left an upload", status, body)
			}
			return
		}
		defer drop(erika, loc)
		keyed := strings.Trim(strings.TrimSpace(key), `"`) != ""
		if !keyed {
			return
		}
		if s, again, _ := post(erika, length); s != 201 || again != loc {
			t.Fatalf("repeat with key %q: %d %q, want 201 %q", key, s, again, loc)
		}
		if s, theirs, _ := post(maxTok, length); s == 201 {
			defer drop(maxTok, theirs)
			if theirs == loc {
				t.Fatalf("key %q gave another person Erika's upload", key)
			}
		}
		if n, err := strconv.ParseInt(length, 10, 64); err == nil {
			if s, _, body := post(erika, strconv.FormatInt(n+1, 10)); s != 422 {
				t.Fatalf("key %q reused with another length: %d %s, want 422", key, s, body)
			}
		}
	})
}

// uploadCount is how many uploads the PIN session's person lists.
func (w *fullWorld) uploadCount(t *testing.T, token string) int {
	_, list := w.do(fullRequest{method: "GET", path: TusPath, pinToken: token})
	var ups struct{ Uploads []struct{ ID string } }
	if err := json.Unmarshal(list, &ups); err != nil {
		t.Fatalf("upload list: %v %s", err, list)
	}
	return len(ups.Uploads)
}
