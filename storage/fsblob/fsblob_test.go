package fsblob

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postbox/intake"
	"postbox/storage/storagetest"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir(), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storagetest.TestBlobStore(t, func(t *testing.T) intake.BlobStore { return newTestStore(t) })
}

// secret is recognisable plaintext: a KVNR-like number and a diagnosis.
var secret = bytes.Repeat([]byte("KVNR A123456780 Diagnose F32.1 "), 8000) // ≈ 250 KB, 4 segments

func putSecret(t *testing.T, s *Store, key string) string {
	t.Helper()
	if _, err := s.Put(t.Context(), key, bytes.NewReader(secret), int64(len(secret))); err != nil {
		t.Fatal(err)
	}
	return s.objectPath(key)
}

func getAll(s *Store, key string) ([]byte, error) {
	rc, _, err := s.Get(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestNoPlaintextOnDisk(t *testing.T) {
	s := newTestStore(t)
	key := "tenant-a/vorgang-4711/befund.pdf"
	putSecret(t, s, key)
	id, err := s.CreateMultipart(t.Context(), key+".upload")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPart(t.Context(), key+".upload", id, 1, bytes.NewReader(secret), int64(len(secret))); err != nil {
		t.Fatal(err)
	}

	var files int
	err = filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, part := range []string{"tenant-a", "vorgang-4711", "befund"} {
			if strings.Contains(path, part) {
				t.Errorf("path %s reveals the key", path)
			}
		}
		if d.IsDir() {
			return nil
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, needle := range [][]byte{[]byte("A123456780"), []byte("F32.1"), []byte("vorgang-4711")} {
			if bytes.Contains(b, needle) {
				t.Errorf("%s contains plaintext %q", path, needle)
			}
		}
		if fi, _ := d.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group/other access", path, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 { // object, upload owner file, part
		t.Fatalf("walked %d files, expected the object and the part", files)
	}
}

// TestTamper flips single bytes all over a stored blob: every flip must
// make Get fail with ErrCorrupt, never return altered plaintext.
func TestTamper(t *testing.T) {
	s := newTestStore(t)
	path := putSecret(t, s, "doc")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := int(fileLen(int64(len(secret)))) - 1
	offsets := map[string]int{
		"magic":             0,
		"version":           7,
		"salt":              8 + 5,
		"nonce prefix":      40 + 2,
		"size":              sizeOffset + 7,
		"first segment":     headerSize + 100,
		"first tag":         headerSize + segSize + 3,
		"middle segment":    headerSize + 2*(segSize+tagSize) + 10,
		"last segment data": last - tagSize - 1,
		"last byte":         last,
	}
	for name, off := range offsets {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(orig)
			b[off] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := getAll(s, "doc")
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get after flipping byte %d: %d bytes, err %v; want ErrCorrupt", off, len(got), err)
			}
			if len(got) > 0 && !bytes.HasPrefix(secret, got) {
				t.Fatal("Get returned bytes that are not the original plaintext")
			}
		})
	}
	// Stat checks header and last segment, so it catches these without a full read.
	for _, name := range []string{"magic", "salt", "nonce prefix", "size", "last segment data", "last byte"} {
		b := bytes.Clone(orig)
		b[offsets[name]] ^= 0x80
		os.WriteFile(path, b, 0o600)
		if _, err := s.Stat(t.Context(), "doc"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Stat after flipping %s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestTruncate(t *testing.T) {
	s := newTestStore(t)
	path := putSecret(t, s, "doc")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full := int64(len(orig))
	nseg := numSegments(int64(len(secret)))
	lengths := map[string]int64{
		"empty":              0,
		"half header":        int64(headerSize) / 2,
		"header only":        int64(headerSize),
		"mid first segment":  int64(headerSize) + 1000,
		"segment boundary":   int64(headerSize) + (nseg-1)*(segSize+tagSize),
		"one byte short":     full - 1,
		"tag of last short":  full - tagSize + 1,
		"last segment empty": full - (int64(len(secret)) - (nseg-1)*segSize),
	}
	for name, n := range lengths {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, orig[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			if got, err := getAll(s, "doc"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Get of a file cut to %d bytes: %d bytes, err %v; want ErrCorrupt", n, len(got), err)
			}
			if _, err := s.Stat(t.Context(), "doc"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Stat of a file cut to %d bytes: %v, want ErrCorrupt", n, err)
			}
		})
	}
	// Rewriting the size field to match a cut at a segment boundary does not
	// help: full segments are never final, so length or last-flag give it away.
	t.Run("cut with forged size", func(t *testing.T) {
		keep := nseg - 1
		b := bytes.Clone(orig[:int64(headerSize)+keep*(segSize+tagSize)])
		binary.BigEndian.PutUint64(b[sizeOffset:], uint64(keep*segSize))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := getAll(s, "doc"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Get: %d bytes, err %v; want ErrCorrupt", len(got), err)
		}
		if _, err := s.Stat(t.Context(), "doc"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Stat: %v, want ErrCorrupt", err)
		}
	})
}

func TestReorderSegments(t *testing.T) {
	s := newTestStore(t)
	path := putSecret(t, s, "doc")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seg0 := bytes.Clone(b[headerSize : headerSize+segSize+tagSize])
	copy(b[headerSize:], b[headerSize+segSize+tagSize:headerSize+2*(segSize+tagSize)])
	copy(b[headerSize+segSize+tagSize:], seg0)
	os.WriteFile(path, b, 0o600)
	if got, err := getAll(s, "doc"); !errors.Is(err, ErrCorrupt) || len(got) > 0 {
		t.Errorf("Get with swapped segments: %d bytes, err %v; want ErrCorrupt and no data", len(got), err)
	}
}

// A blob is bound to its key: copying one document's file over another's
// does not pass as the other document.
func TestFileSwappedBetweenKeys(t *testing.T) {
	s := newTestStore(t)
	a := putSecret(t, s, "tenant-a/doc")
	if _, err := s.Put(t.Context(), "tenant-b/doc", strings.NewReader("b"), 1); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(a)
	os.WriteFile(s.objectPath("tenant-b/doc"), b, 0o600)
	if _, err := getAll(s, "tenant-b/doc"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a file copied from another key: %v, want ErrCorrupt", err)
	}
}

func TestWrongStoreKey(t *testing.T) {
	root := t.TempDir()
	s, _ := New(root, testKey(1))
	putSecret(t, s, "doc")
	other, err := New(root, testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	// File names depend on the key too, so the blob is simply not found...
	if _, err := other.Stat(t.Context(), "doc"); !errors.Is(err, intake.ErrBlobNotFound) {
		t.Errorf("Stat with another store key: %v, want ErrBlobNotFound", err)
	}
	// ...and reading the file directly under the other key fails.
	other.nameKey = s.nameKey
	if _, err := getAll(other, "doc"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get with another store key: %v, want ErrCorrupt", err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

// A write that fails halfway leaves the previous object untouched and no
// temp file behind.
func TestFailedPutKeepsOldObject(t *testing.T) {
	s := newTestStore(t)
	putSecret(t, s, "doc")
	for _, size := range []int64{-1, 1 << 20} {
		if _, err := s.Put(t.Context(), "doc", &failingReader{n: 300 << 10}, size); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		got, err := getAll(s, "doc")
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("after failed Put: %d bytes, %v; want the old object", len(got), err)
		}
	}
	if entries, _ := os.ReadDir(s.tmpDir()); len(entries) != 0 {
		t.Errorf("tmp holds %d leftover files", len(entries))
	}
}

func TestUploadIDCannotEscape(t *testing.T) {
	s := newTestStore(t)
	putSecret(t, s, "doc")
	for _, id := range []string{"", "..", "../objects", "../../etc", "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcde", "0123456789abcdef/123456789abcdef0"} {
		if _, err := s.ListParts(t.Context(), "doc", id); err == nil || errors.Is(err, intake.ErrBlobNotFound) {
			t.Errorf("ListParts(%q): %v, want an invalid-ID error", id, err)
		}
		if err := s.AbortMultipart(t.Context(), "doc", id); err == nil {
			t.Errorf("AbortMultipart(%q) succeeded, want an invalid-ID error", id)
		}
		if _, err := s.PutPart(t.Context(), "doc", id, 1, strings.NewReader("x"), 1); err == nil {
			t.Errorf("PutPart(%q) succeeded", id)
		}
	}
	if _, err := getAll(s, "doc"); err != nil {
		t.Fatalf("object damaged: %v", err)
	}
}

func TestPing(t *testing.T) {
	s := newTestStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	os.RemoveAll(s.root)
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded with the root removed")
	}
}

func TestNew(t *testing.T) {
	if _, err := New(t.TempDir(), make([]byte, 16)); err == nil {
		t.Error("New accepted a 16-byte key")
	}
	root := t.TempDir()
	s, err := New(root, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(s.tmpDir(), "blob-old")
	young := filepath.Join(s.tmpDir(), "blob-young")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(young, []byte("x"), 0o600)
	os.Chtimes(old, time.Now().Add(-48*time.Hour), time.Now().Add(-48*time.Hour))
	if _, err := New(root, testKey(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a stale temp file survived New")
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("New removed a fresh temp file that may belong to a running writer")
	}
}
