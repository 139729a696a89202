//go:build integration

package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUploadOnFullFilesystem runs the embedded default on a real, small
// filesystem (a 40 MiB tmpfs; mounting needs root, as ./deploy/test runs)
// with the reserve check off, so the disk really runs full: the chunk that
// does not fit is answered 507 in German, no half-written file stays in
// the blob directory, the offset is the last chunk stored whole; with the
// last bytes taken, a draft save (SQLite cannot grow) is answered 507 too.
// After the volume is grown both work again and the file is byte-identical.
func TestUploadOnFullFilesystem(t *testing.T) {
	dir, err := os.MkdirTemp("", "postbox-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 40 MiB tmpfs at %s (needs root, as ./deploy/test runs): %v %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
		os.Remove(dir)
	})
	data := make([]byte, 64<<20)
	rand.Read(data)
	copy(data, "%PDF-1.7\n")
	sum := sha256.Sum256(data)

	r := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir, "POSTBOX_DISK_RESERVE": "0"})
	u := demoPINLogin(t, r)
	status, path, body := u.create(len(data))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	const chunk = 6 << 20
	off := 0
	for {
		end := min(off+chunk, len(data))
		status, body := u.patch(path, off, data[off:end])
		if status == http.StatusNoContent {
			off = end
			if off == len(data) {
				t.Fatal("64 MiB fit on a 40 MiB filesystem")
			}
			continue
		}
		checkFull(t, "chunk on the full filesystem", status, body)
		break
	}
	t.Logf("filesystem full after %d MiB; the chunk after it was refused with 507", off>>20)
	if got := u.offset(path); got != off {
		t.Fatalf("offset after the refused chunk %d, want %d (the last chunk stored whole)", got, off)
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "blobs", "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Fatalf("half-written files stayed in the blob directory: %d in blobs/tmp", len(tmp))
	}

	// The last bytes go to a filler file: now SQLite cannot grow either. A
	// draft save (a database write only) is refused the same way.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(zeros); err != nil {
			break
		}
	}
	filler.Close()
	draft, _ := json.Marshal(map[string]string{"case_type": "hilfsmittel", "subject": "Verordnung", "message": strings.Repeat("Bitte um Rückruf. ", 250)})
	status, _, body = u.do("PUT", "/api/draft", draft, map[string]string{"Content-Type": "application/json"})
	t.Logf("draft save with the volume full: %d %s", status, body)
	checkFull(t, "draft save on the full filesystem", status, body)
	os.Remove(filler.Name())

	if out, err := exec.Command("mount", "-o", "remount,size=256m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v %s", err, out)
	}
	for off < len(data) {
		end := min(off+chunk, len(data))
		if status, body := u.patch(path, off, data[off:end]); status != http.StatusNoContent {
			t.Fatalf("resume at %d with room again: %d %s", off, status, body)
		}
		off = end
	}
	if status, _, body := u.do("PUT", "/api/draft", draft, map[string]string{"Content-Type": "application/json"}); status != http.StatusOK {
		t.Fatalf("draft save with room again: %d %s", status, body)
	}
	if l := u.list(); len(l) != 1 || l[0].Status != "complete" || l[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploads after the resume: %+v, want complete with sha256 %x", l, sum)
	}
}
