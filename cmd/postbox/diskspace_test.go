package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"postbox/intake"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512MiB", 512 << 20, true}, {"2GiB", 2 << 30, true}, {"100MB", 100e6, true},
		{"4096", 4096, true}, {"1 GiB", 1 << 30, true}, {"-1", 0, false}, {"viel", 0, false}, {"1.5GiB", 0, false}, {"", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestDiskReserveCheck(t *testing.T) {
	d := diskReserve{dir: "/data", reserve: 100, free: func(string) (int64, error) { return 1000, nil }}
	for _, tc := range []struct {
		need   int64
		refuse bool
	}{{0, false}, {900, false}, {901, true}, {5000, true}} {
		err := d.check(tc.need)
		if refused := errors.Is(err, intake.ErrInsufficientStorage); refused != tc.refuse || (err != nil && !refused) {
			t.Errorf("need %d with 1000 free, reserve 100: %v", tc.need, err)
		}
	}
	// A volume that cannot be asked is an error, not a refusal.
	d.free = func(string) (int64, error) { return 0, errors.New("statfs: no such file") }
	if err := d.check(0); err == nil || errors.Is(err, intake.ErrInsufficientStorage) {
		t.Errorf("statfs failure: %v", err)
	}
}

// diskUpload is a minimal tus client for the embedded server.
type diskUpload struct {
	t                  *testing.T
	base, cookie, csrf string
}

func (u diskUpload) do(method, path string, body []byte, h map[string]string) (int, http.Header, []byte) {
	u.t.Helper()
	req, err := http.NewRequest(method, u.base+path, bytes.NewReader(body))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Cookie", u.cookie)
	req.Header.Set("X-CSRF-Token", u.csrf)
	req.Header.Set("Tus-Resumable", intake.TusVersion)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

func (u diskUpload) patch(path string, off int, chunk []byte) (int, []byte) {
	status, _, body := u.do("PATCH", path, chunk, map[string]string{"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(off)})
	return status, body
}

func (u diskUpload) offset(path string) int {
	u.t.Helper()
	status, h, _ := u.do("HEAD", path, nil, nil)
	n, err := strconv.Atoi(h.Get("Upload-Offset"))
	if status != 200 || err != nil {
		u.t.Fatalf("HEAD %s: %d %q", path, status, h.Get("Upload-Offset"))
	}
	return n
}

func (u diskUpload) create(length int) (int, string, []byte) {
	status, h, body := u.do("POST", "/api/uploads/", nil, map[string]string{"Upload-Length": strconv.Itoa(length),
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("befund.pdf"))})
	return status, h.Get("Location"), body
}

// list returns the uploads as the upload page sees them.
func (u diskUpload) list() []struct {
	Status, SHA256 string
	Offset         int64
} {
	u.t.Helper()
	_, _, body := u.do("GET", "/api/uploads", nil, nil)
	var out struct {
		Uploads []struct {
			Status, SHA256 string
			Offset         int64
		} `json:"uploads"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		u.t.Fatalf("upload list %q: %v", body, err)
	}
	return out.Uploads
}

// demoPINLogin logs in with the Einmal-PIN that serve --demo printed.
func demoPINLogin(t *testing.T, r *running) diskUpload {
	t.Helper()
	m := pinLine.FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("demo printed no Einmal-PIN:\n%s", r.stdout.String())
	}
	body, _ := json.Marshal(map[string]string{"kasse": demoKasseID, "kvnr": m[1], "pin": m[2]})
	resp, err := http.Post("http://"+r.addr+"/api/pin-login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "postbox_pin") {
			return diskUpload{t: t, base: "http://" + r.addr, cookie: c.Name + "=" + c.Value, csrf: out.CSRF}
		}
	}
	t.Fatalf("PIN login: %d, no cookie", resp.StatusCode)
	return diskUpload{}
}

// files counts the regular files under dir.
func files(t *testing.T, dir string) int {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkFull checks a 507 answer: German problem+json.
func checkFull(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	var p struct{ Type, Title, Detail string }
	if status != http.StatusInsufficientStorage || json.Unmarshal(body, &p) != nil || p.Title != "Speicher voll" || !strings.Contains(p.Detail, "Speicher") {
		t.Fatalf("%s: %d %s; want 507 with the German message", what, status, body)
	}
}

// The embedded default, with its data dir's volume "below the reserve"
// (POSTBOX_DISK_RESERVE larger than the free space): an upload started
// before gets 507 for its next chunk and keeps its offset, a new upload is
// refused, nothing is written to the blob directory; with room again the
// upload resumes and the file is byte-identical.
func TestUploadsRefusedBelowDiskReserve(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 12<<20)
	rand.Read(data)
	copy(data, "%PDF-1.7\n")
	sum := sha256.Sum256(data)

	r := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir, "POSTBOX_DISK_RESERVE": "0"})
	u := demoPINLogin(t, r)
	status, path, body := u.create(len(data))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	if status, body := u.patch(path, 0, data[:6<<20]); status != http.StatusNoContent {
		t.Fatalf("first chunk: %d %s", status, body)
	}
	r.shutdown(t)

	// The volume "fills up": a reserve beyond any real free space.
	r = startServe(t, nil, map[string]string{"POSTBOX_DATA_DIR": dir, "POSTBOX_DISK_RESERVE": "1000TiB"})
	u.base = "http://" + r.addr
	blobs := files(t, filepath.Join(dir, "blobs"))
	status, body = u.patch(path, 6<<20, data[6<<20:])
	checkFull(t, "next chunk", status, body)
	if off := u.offset(path); off != 6<<20 {
		t.Fatalf("offset after the refused chunk: %d, want %d", off, 6<<20)
	}
	status, _, body = u.create(1 << 20)
	checkFull(t, "new upload", status, body)
	if n := files(t, filepath.Join(dir, "blobs")); n != blobs {
		t.Fatalf("the refused requests left %d files in the blob directory, %d before", n, blobs)
	}
	if l := u.list(); len(l) != 1 || l[0].Status != "uploading" || l[0].Offset != 6<<20 {
		t.Fatalf("uploads after the refusals: %+v", l)
	}
	if code, ready := getReady(t, r.addr); code != http.StatusServiceUnavailable || !slices.Equal(ready.Down, []string{"disk"}) {
		t.Fatalf("readyz below the reserve: %d %+v, want 503 naming disk", code, ready)
	}
	r.shutdown(t)

	r = startServe(t, nil, map[string]string{"POSTBOX_DATA_DIR": dir, "POSTBOX_DISK_RESERVE": "0"})
	u.base = "http://" + r.addr
	if status, body := u.patch(path, 6<<20, data[6<<20:]); status != http.StatusNoContent {
		t.Fatalf("resume with room again: %d %s", status, body)
	}
	if l := u.list(); len(l) != 1 || l[0].Status != "complete" || l[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploads after the resume: %+v, want complete with sha256 %x", l, sum)
	}
}

// Settings refuse a malformed reserve with one line naming it.
func TestDiskReserveSettingIsChecked(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve"}, envFrom(map[string]string{"POSTBOX_DATA_DIR": t.TempDir(), "POSTBOX_DISK_RESERVE": "viel"}), &stdout, &stderr)
	if out := strings.TrimSpace(stderr.String()); code != 2 || !strings.Contains(out, "POSTBOX_DISK_RESERVE") || strings.Count(out, "\n") != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
}

type codedErr struct{ code int }

func (e codedErr) Error() string { return "sqlite error" }
func (e codedErr) Code() int     { return e.code }

// Which write errors mean "the volume is full" (507) — and which do not.
func TestStorageFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("put part 3: %w", &fs.PathError{Op: "write", Path: "/data/blobs/tmp/blob-1", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("upload: %w", intake.ErrInsufficientStorage), true},
		{fmt.Errorf("save upload: %w", codedErr{13}), true},        // SQLITE_FULL
		{fmt.Errorf("save upload: %w", codedErr{13 | 3<<8}), true}, // an extended code of SQLITE_FULL
		{fmt.Errorf("save upload: %w", codedErr{5}), false},        // SQLITE_BUSY
		{errors.New("database or disk is full (13)"), true},
		{fmt.Errorf("put part 3: %w", syscall.EACCES), false},
	} {
		if got := storageFull(tc.err); got != tc.want {
			t.Errorf("storageFull(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
