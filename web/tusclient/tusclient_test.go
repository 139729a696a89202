//go:build integration

package tusclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var npmOnce sync.Once

// node runs upload.mjs with tus-js-client 4.3.1 (npm install once).
func node(t *testing.T, vars map[string]string) nodeResult {
	t.Helper()
	npmOnce.Do(func() {
		if _, err := os.Stat("node_modules/tus-js-client/package.json"); err == nil {
			return
		}
		out, err := exec.Command("npm", "install", "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm install: %v\n%s", err, out)
		}
	})
	cmd := exec.Command("node", "upload.mjs")
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node upload.mjs (%s): %v\n%s", vars["TUS_PHASE"], err, stderr.String())
	}
	var res nodeResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return res
}

type nodeResult struct {
	URL         string           `json:"url"`
	PartialURLs []string         `json:"partialUrls"`
	FirstPatch  map[string]int64 `json:"firstPatch"`
	Patches     int              `json:"patches"`
	Aborted     bool             `json:"aborted"`
}

// waitIdle waits until no request holds the upload (the server finished
// with an aborted PATCH), so its offset is final.
func (e *env) waitIdle(t *testing.T, url string) {
	t.Helper()
	id := url[strings.LastIndexByte(url, '/')+1:]
	db := e.db(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := db.UploadByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if u.LockOwner == "" || time.Now().After(u.LockUntil) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload %s still locked", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTusJSClientAbortAndResume: tus-js-client uploads a 50 MiB file in
// 1 MiB chunks, is aborted halfway, resumes from the offset the server
// reports, and the object in MinIO has the file's SHA-256 — as one upload
// and as four parallel partial uploads joined by concatenation.
func TestTusJSClientAbortAndResume(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run("parallelUploads="+strconv.Itoa(parallel), func(t *testing.T) {
			e := newEnv(t)
			srv := e.start(t, freeAddr(t))
			kasseID, kvnr, _ := e.person(t, nil)
			cookie := login(t, srv.addr, kasseID, kvnr, e.issuePIN(t, kasseID, kvnr))
			const size = 50 << 20
			path, want := testFile(t, size)
			vars := map[string]string{
				"TUS_ENDPOINT": "http://" + srv.addr + "/api/uploads/", "TUS_COOKIE": cookie, "TUS_FILE": path,
				"TUS_CHUNK": strconv.Itoa(1 << 20), "TUS_PARALLEL": strconv.Itoa(parallel),
				"TUS_STORAGE": filepath.Join(t.TempDir(), "tus-urls.json"), "TUS_ABORT_AT": strconv.Itoa(size / 2),
			}
			vars["TUS_PHASE"] = "start"
			first := node(t, vars)
			if !first.Aborted {
				t.Fatal("the first run was not aborted")
			}
			urls := first.PartialURLs
			if parallel == 1 {
				urls = []string{first.URL}
			}
			if len(urls) != parallel {
				t.Fatalf("%d upload URLs, want %d", len(urls), parallel)
			}
			c := newClient(srv.addr, cookie)
			server := map[string]int64{}
			var stored int64
			for _, u := range urls {
				e.waitIdle(t, u)
				server[u] = c.offset(t, u)
				stored += server[u]
			}
			if stored <= 0 || stored >= size {
				t.Fatalf("after the abort the server holds %d bytes; want some, not all", stored)
			}
			t.Logf("aborted: server holds %d of %d bytes", stored, size)

			vars["TUS_PHASE"] = "resume"
			second := node(t, vars)
			if second.URL == "" || second.Aborted {
				t.Fatalf("resume did not finish: %+v", second)
			}
			for _, u := range urls {
				got, patched := second.FirstPatch[u]
				if server[u] < size/int64(parallel)-(1<<20) && !patched {
					t.Errorf("%s: resume sent no PATCH although the server held only %d bytes", u, server[u])
				}
				if patched && got != server[u] {
					t.Errorf("%s: resume started at %d, the server reported %d", u, got, server[u])
				}
			}
			sum, n := e.storedSHA256(t, second.URL)
			if n != size || sum != want {
				t.Fatalf("stored object: %d bytes sha256 %s; want %d bytes %s", n, sum, size, want)
			}
			list := c.uploads(t)
			if len(list) != 1 || list[0].SHA256 != want || list[0].Status != "complete" || list[0].Size != size {
				t.Fatalf("upload list: %+v", list)
			}
		})
	}
}

// TestCrashDuringPatch kills the server with SIGKILL while a PATCH is
// streaming, starts it again, and the client resumes from the offset the
// server reports; the result is byte-identical. The client is a small Go
// tus client here, to cut the request at a known point.
func TestCrashDuringPatch(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	srv := e.start(t, addr)
	kasseID, kvnr, _ := e.person(t, nil)
	cookie := login(t, addr, kasseID, kvnr, e.issuePIN(t, kasseID, kvnr))
	const size = 48 << 20
	path, want := testFile(t, size)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(addr, cookie)
	url := c.create(t, size, "befund.pdf")

	// One PATCH with the whole file, of which 40 MiB arrive before the kill.
	pr, pw := io.Pipe()
	patchDone := make(chan error, 1)
	go func() {
		_, _, err := c.patch(context.Background(), url, 0, pr, size)
		patchDone <- err
	}()
	if _, err := pw.Write(data[:40<<20]); err != nil {
		t.Fatal(err)
	}
	id := url[strings.LastIndexByte(url, '/')+1:]
	db := e.db(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := db.UploadByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		// One 32 MiB part (the default part size) is stored; the second
		// cannot be complete with 40 MiB sent.
		if u.Offset >= 32<<20 {
			if u.LockOwner == "" {
				t.Fatal("the PATCH is not in progress any more")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server stored only %d bytes", u.Offset)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-patchDone; err == nil {
		t.Fatal("the PATCH succeeded although the server was killed")
	}

	srv2 := e.start(t, addr) // same address, same database and bucket
	off := c.offset(t, url)
	if off != 32<<20 {
		t.Fatalf("after the restart the server reports offset %d, want the stored part (%d)", off, 32<<20)
	}
	// The killed process still holds the upload's lease until it runs out:
	// the client waits as tus clients do (423, Retry-After).
	locked := 0
	for off < size {
		end := min(off+8<<20, size)
		status, newOff, err := c.patch(context.Background(), url, off, bytes.NewReader(data[off:end]), end-off)
		if err != nil {
			t.Fatalf("PATCH at %d: %v\nserver log:\n%s", off, err, srv2.Logs())
		}
		switch status {
		case http.StatusNoContent:
			if newOff != end {
				t.Fatalf("PATCH to %d: new offset %d", end, newOff)
			}
			off = end
		case http.StatusLocked:
			locked++
			time.Sleep(time.Second)
		default:
			t.Fatalf("PATCH at %d: %d", off, status)
		}
	}
	t.Logf("waited out the dead process's lease with %d answers 423", locked)
	sum, n := e.storedSHA256(t, url)
	if n != size || sum != want {
		t.Fatalf("stored object: %d bytes sha256 %s; want %d bytes %s", n, sum, size, want)
	}
	if list := c.uploads(t); len(list) != 1 || list[0].SHA256 != want || list[0].Status != "complete" {
		t.Fatalf("upload list: %+v", list)
	}
}

// TestTusJSClientSurvivesServerKill: the server is killed with SIGKILL
// while tus-js-client uploads and started again; the client's own retries
// find the server's offset and finish the file.
func TestTusJSClientSurvivesServerKill(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	srv := e.start(t, addr)
	kasseID, kvnr, personID := e.person(t, nil)
	cookie := login(t, addr, kasseID, kvnr, e.issuePIN(t, kasseID, kvnr))
	const size = 50 << 20
	path, want := testFile(t, size)
	vars := map[string]string{
		"TUS_ENDPOINT": "http://" + addr + "/api/uploads/", "TUS_COOKIE": cookie, "TUS_FILE": path,
		"TUS_CHUNK": strconv.Itoa(1 << 20), "TUS_PARALLEL": "1", "TUS_PHASE": "full",
		"TUS_STORAGE": filepath.Join(t.TempDir(), "tus-urls.json"),
	}
	result := make(chan nodeResult, 1)
	go func() { result <- node(t, vars) }()

	// Kill once a fifth has arrived; a 1 MiB PATCH is almost always in flight.
	db := e.db(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var off int64
		if ups, err := db.UploadsOfPerson(context.Background(), kasseID, personID); err == nil && len(ups) == 1 {
			off = ups[0].Offset
		}
		if off >= size/5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("upload did not progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.kill()
	time.Sleep(time.Second)
	e.start(t, addr)
	var res nodeResult
	select {
	case res = <-result:
	case <-time.After(3 * time.Minute):
		t.Fatal("tus-js-client did not finish after the restart")
	}
	sum, n := e.storedSHA256(t, res.URL)
	if n != size || sum != want {
		t.Fatalf("stored object: %d bytes sha256 %s; want %d bytes %s", n, sum, size, want)
	}
}
