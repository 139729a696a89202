package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"postbox/intake"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// TestBlobStore runs the intake.BlobStore contract against the store that
// newStore returns. newStore is called once; every subtest uses its own
// keys under a random prefix, so a shared bucket works.
func TestBlobStore(t *testing.T, newStore func(t *testing.T) intake.BlobStore) {
	s := newStore(t)
	var b [6]byte
	rand.Read(b[:])
	prefix := "storagetest/" + hex.EncodeToString(b[:]) + "/"

	t.Run("Ping", func(t *testing.T) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, s, prefix+"roundtrip/") })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, s, prefix+"overwrite/") })
	t.Run("Missing", func(t *testing.T) { testMissing(t, s, prefix+"missing/") })
	t.Run("Delete", func(t *testing.T) { testDelete(t, s, prefix+"delete/") })
	t.Run("WrongSize", func(t *testing.T) { testWrongSize(t, s, prefix+"wrongsize/") })
	t.Run("Keys", func(t *testing.T) { testKeys(t, s, prefix+"keys/") })
	t.Run("Multipart", func(t *testing.T) { testMultipart(t, s, prefix+"multipart/") })
	t.Run("Streaming", func(t *testing.T) { testStreaming(t, s, prefix+"streaming/") })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, s, prefix+"cancel/") })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, s, prefix+"concurrent/") })
	t.Run("DataWithEOF", func(t *testing.T) { testDataWithEOF(t, s, prefix+"dataeof/") })
}

// gen produces n pseudo-random bytes from seed without holding them, and
// hashes what it hands out, so large objects can be checked by SHA-256.
type gen struct {
	src  *mrand.ChaCha8
	left int64
	h    hash.Hash
	// onRead, if set, sees the running total after each Read.
	onRead func(total int64)
	total  int64
}

func newGen(seed uint64, n int64, h hash.Hash) *gen {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	if h == nil {
		h = sha256.New()
	}
	return &gen{src: mrand.NewChaCha8(s), left: n, h: h}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	g.src.Read(p)
	g.h.Write(p)
	g.left -= int64(len(p))
	g.total += int64(len(p))
	if g.onRead != nil {
		g.onRead(g.total)
	}
	return len(p), nil
}

func (g *gen) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// onlyReader hides io.Seeker, io.ReaderAt and io.WriterTo, so a store
// cannot take shortcuts a network body would not offer.
type onlyReader struct{ io.Reader }

// readAll streams key through SHA-256 and returns hash, length and info.
func readAll(t *testing.T, s intake.BlobStore, key string) (string, int64, intake.BlobInfo) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("Get(%q): read after %d bytes: %v", key, n, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Get(%q): close: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, info
}

func put(t *testing.T, s intake.BlobStore, key string, data []byte) intake.BlobInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, onlyReader{bytes.NewReader(data)}, int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, intake.ErrBlobNotFound) {
		t.Fatalf("%s: got error %v, want intake.ErrBlobNotFound", what, err)
	}
}

// checkRecent guards against a zero or garbage time; the bound allows for
// clock skew between test host and server.
func checkRecent(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if d := time.Since(ts); d > time.Hour || d < -time.Hour {
		t.Errorf("%s: Created = %v, want about now", what, ts)
	}
}

func testRoundTrip(t *testing.T, s intake.BlobStore, prefix string) {
	sizes := []struct {
		name string
		n    int64
	}{
		{"empty", 0},
		{"1B", 1},
		{"1000B", 1000},
		{"64KiB", 64 * kib},
		{"64KiB+1", 64*kib + 1},
		{"3MiB+5", 3*mib + 5},
		{"17MiB+3", 17*mib + 3}, // beyond minio-go's single-PUT limit
	}
	for i, sz := range sizes {
		for _, known := range []bool{true, false} {
			name := sz.name + "/known"
			declared := sz.n
			if !known {
				name, declared = sz.name+"/unknown", -1
			}
			t.Run(name, func(t *testing.T) {
				key := prefix + strings.NewReplacer("/", "-", "+", "p").Replace(name) + ".bin"
				g := newGen(uint64(100+i), sz.n, nil)
				info, err := s.Put(t.Context(), key, onlyReader{g}, declared)
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if info.Key != key || info.Size != sz.n || info.ETag == "" {
					t.Errorf("Put = %+v, want key %q, size %d, an ETag", info, key, sz.n)
				}
				checkRecent(t, "Put", info.Created)

				st, err := s.Stat(t.Context(), key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if st.Key != key || st.Size != sz.n || st.ETag != info.ETag {
					t.Errorf("Stat = %+v, want key %q, size %d, ETag %q", st, key, sz.n, info.ETag)
				}
				checkRecent(t, "Stat", st.Created)

				sum, n, gi := readAll(t, s, key)
				if n != sz.n || sum != g.sum() {
					t.Errorf("Get returned %d bytes with SHA-256 %s, want %d bytes with %s", n, sum, sz.n, g.sum())
				}
				if gi.Size != sz.n || gi.ETag != info.ETag {
					t.Errorf("Get info = %+v, want size %d, ETag %q", gi, sz.n, info.ETag)
				}
			})
		}
	}
}

func testOverwrite(t *testing.T, s intake.BlobStore, prefix string) {
	key := prefix + "doc.pdf"
	first := put(t, s, key, []byte("first version"))
	second := put(t, s, key, []byte("second, longer version"))
	if first.ETag == second.ETag {
		t.Errorf("ETag did not change on overwrite: %q", first.ETag)
	}
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != "second, longer version" {
		t.Fatalf("Get = %q, %v; want the second version", got, err)
	}
	st, err := s.Stat(t.Context(), key)
	if err != nil || st.Size != int64(len(got)) || st.ETag != second.ETag {
		t.Fatalf("Stat = %+v, %v; want size %d, ETag %q", st, err, len(got), second.ETag)
	}
}

func testMissing(t *testing.T, s intake.BlobStore, prefix string) {
	key := prefix + "never-written"
	_, err := s.Stat(t.Context(), key)
	wantNotFound(t, "Stat", err)
	rc, _, err := s.Get(t.Context(), key)
	if rc != nil {
		rc.Close()
	}
	wantNotFound(t, "Get", err)
}

func testDelete(t *testing.T, s intake.BlobStore, prefix string) {
	key := prefix + "doc"
	put(t, s, key, []byte("to be deleted"))
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Stat(t.Context(), key)
	wantNotFound(t, "Stat after Delete", err)
	_, _, err = s.Get(t.Context(), key)
	wantNotFound(t, "Get after Delete", err)
	if err := s.Delete(t.Context(), key); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	if err := s.Delete(t.Context(), prefix+"never-written"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	// A deleted key can be written again.
	put(t, s, key, []byte("again"))
	if _, n, _ := readAll(t, s, key); n != 5 {
		t.Errorf("Get after re-Put: %d bytes, want 5", n)
	}
}

// testWrongSize: a declared size is a promise. A reader that ends early or
// runs on means the caller's length is wrong, and storing a cut or padded
// document would be worse than failing.
func testWrongSize(t *testing.T, s intake.BlobStore, prefix string) {
	cases := []struct {
		name     string
		actual   int64
		declared int64
	}{
		{"short", 100, 200},
		{"long", 200, 100},
		{"long-empty", 10, 0},
		{"short-multi-MiB", 17 * mib, 18 * mib},
		{"long-multi-MiB", 18 * mib, 17 * mib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := prefix + c.name
			_, err := s.Put(t.Context(), key, onlyReader{newGen(7, c.actual, nil)}, c.declared)
			if err == nil {
				t.Fatalf("Put of %d bytes declared as %d succeeded, want an error", c.actual, c.declared)
			}
			_, err = s.Stat(t.Context(), key)
			wantNotFound(t, "Stat after failed Put", err)
		})
	}
}

func testKeys(t *testing.T, s intake.BlobStore, prefix string) {
	invalid := []string{
		"", "../x", "a/../../x", "/abs", "/etc/passwd", "./a", "a/./b", "a/..", "a//b", "a/",
		"a b", `a\b`, "ä", "a\x00b", "a?b", "a%2e%2e",
		strings.Repeat("k/", 512) + "k", // 1025 bytes
		"seg/" + strings.Repeat("k", 256),
	}
	for _, key := range invalid {
		t.Run(fmt.Sprintf("invalid/%.24q", key), func(t *testing.T) {
			ctx := t.Context()
			refused := func(op string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s(%q) succeeded, want an error", op, key)
				} else if errors.Is(err, intake.ErrBlobNotFound) {
					t.Errorf("%s(%q) = %v; an invalid key is a caller error, not a missing blob", op, key, err)
				}
			}
			_, err := s.Put(ctx, key, strings.NewReader("x"), 1)
			refused("Put", err)
			rc, _, err := s.Get(ctx, key)
			if rc != nil {
				rc.Close()
			}
			refused("Get", err)
			_, err = s.Stat(ctx, key)
			refused("Stat", err)
			refused("Delete", s.Delete(ctx, key))
			id, err := s.CreateMultipart(ctx, key)
			refused("CreateMultipart", err)
			if err == nil {
				s.AbortMultipart(ctx, key, id)
			}
		})
	}
	seg := strings.Repeat("k", 255) + "/"
	longest := strings.Repeat(seg, 3) + strings.Repeat("t", 1024-len(prefix)-3*len(seg)) // exactly 1024 bytes with prefix
	valid := []string{"a", "A-Z_0.9", "dots/a..b", "dots/.hidden", "dots/...", "deep/1/2/3/4/5/6/7/8/doc.pdf", longest}
	for i, rel := range valid {
		t.Run(fmt.Sprintf("valid/%d", i), func(t *testing.T) {
			key := prefix + rel
			put(t, s, key, []byte(rel))
			if _, n, _ := readAll(t, s, key); n != int64(len(rel)) {
				t.Errorf("Get(%q): %d bytes, want %d", key, n, len(rel))
			}
		})
	}
	// "a" and "a/b" are independent objects, as in S3.
	t.Run("prefix-of-other", func(t *testing.T) {
		put(t, s, prefix+"p", []byte("file"))
		put(t, s, prefix+"p/q", []byte("nested"))
		if _, n, _ := readAll(t, s, prefix+"p"); n != 4 {
			t.Errorf("Get(p): %d bytes, want 4", n)
		}
	})
}

func testMultipart(t *testing.T, s intake.BlobStore, prefix string) {
	putPart := func(t *testing.T, key, id string, n int, g *gen, size int64) intake.Part {
		t.Helper()
		p, err := s.PutPart(t.Context(), key, id, n, onlyReader{g}, size)
		if err != nil {
			t.Fatalf("PutPart(%d): %v", n, err)
		}
		if p.Number != n || p.Size != size || p.ETag == "" {
			t.Fatalf("PutPart(%d) = %+v, want number %d, size %d, an ETag", n, p, n, size)
		}
		return p
	}
	create := func(t *testing.T, key string) string {
		t.Helper()
		id, err := s.CreateMultipart(t.Context(), key)
		if err != nil {
			t.Fatalf("CreateMultipart: %v", err)
		}
		if id == "" {
			t.Fatal("CreateMultipart returned an empty upload ID")
		}
		return id
	}
	listParts := func(t *testing.T, key, id string, want ...intake.Part) {
		t.Helper()
		got, err := s.ListParts(t.Context(), key, id)
		if err != nil {
			t.Fatalf("ListParts: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("ListParts = %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ListParts = %+v, want %+v", got, want)
			}
		}
	}

	t.Run("Complete", func(t *testing.T) {
		key := prefix + "complete.pdf"
		id := create(t, key)
		listParts(t, key, id)
		h := sha256.New()
		p1 := putPart(t, key, id, 1, newGen(1, intake.MinPartSize, h), intake.MinPartSize)
		p2 := putPart(t, key, id, 2, newGen(2, 5*mib+17, h), 5*mib+17)
		p3 := putPart(t, key, id, 3, newGen(3, 1000, h), 1000)
		want := hex.EncodeToString(h.Sum(nil))
		listParts(t, key, id, p1, p2, p3)

		_, err := s.Stat(t.Context(), key)
		wantNotFound(t, "Stat before CompleteMultipart", err)

		info, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p1, p2, p3})
		if err != nil {
			t.Fatalf("CompleteMultipart: %v", err)
		}
		size := p1.Size + p2.Size + p3.Size
		if info.Key != key || info.Size != size || info.ETag == "" {
			t.Errorf("CompleteMultipart = %+v, want key %q, size %d, an ETag", info, key, size)
		}
		st, err := s.Stat(t.Context(), key)
		if err != nil || st.Size != size || st.ETag != info.ETag {
			t.Errorf("Stat = %+v, %v; want size %d, ETag %q", st, err, size, info.ETag)
		}
		if sum, n, _ := readAll(t, s, key); n != size || sum != want {
			t.Errorf("Get: %d bytes, SHA-256 %s; want %d bytes, %s", n, sum, size, want)
		}
		_, err = s.ListParts(t.Context(), key, id)
		wantNotFound(t, "ListParts after CompleteMultipart", err)
	})

	t.Run("RewritePart", func(t *testing.T) {
		key := prefix + "rewrite.pdf"
		id := create(t, key)
		old1 := putPart(t, key, id, 1, newGen(10, intake.MinPartSize, nil), intake.MinPartSize)
		old2 := putPart(t, key, id, 2, newGen(11, 2000, nil), 2000)
		h := sha256.New()
		p1 := putPart(t, key, id, 1, newGen(12, intake.MinPartSize+7, h), intake.MinPartSize+7)
		p2 := putPart(t, key, id, 2, newGen(13, 300, h), 300)
		if p1.ETag == old1.ETag || p2.ETag == old2.ETag {
			t.Errorf("rewritten parts kept their ETags: %+v %+v", p1, p2)
		}
		listParts(t, key, id, p1, p2)

		// S3 rules that the tus layer relies on being enforced by every store.
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{old1, p2}); err == nil {
			t.Fatal("CompleteMultipart with a replaced part's ETag succeeded")
		}
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p2, p1}); err == nil {
			t.Fatal("CompleteMultipart with parts out of order succeeded")
		}
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p1, p2, {Number: 3, ETag: p2.ETag, Size: 1}}); err == nil {
			t.Fatal("CompleteMultipart with a part never uploaded succeeded")
		}
		// A failed completion leaves the upload usable.
		listParts(t, key, id, p1, p2)
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p1, p2}); err != nil {
			t.Fatalf("CompleteMultipart: %v", err)
		}
		want := hex.EncodeToString(h.Sum(nil))
		if sum, n, _ := readAll(t, s, key); sum != want || n != p1.Size+p2.Size {
			t.Errorf("Get: %d bytes, SHA-256 %s; want the rewritten parts (%d bytes, %s)", n, sum, p1.Size+p2.Size, want)
		}
	})

	t.Run("SubsetOfParts", func(t *testing.T) {
		// Parts left out of the completion list are dropped, as in S3.
		key := prefix + "subset.pdf"
		id := create(t, key)
		p1 := putPart(t, key, id, 1, newGen(20, intake.MinPartSize, nil), intake.MinPartSize)
		putPart(t, key, id, 2, newGen(21, 10, nil), 10)
		p3 := putPart(t, key, id, 3, newGen(22, 20, nil), 20)
		info, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p1, p3})
		if err != nil {
			t.Fatalf("CompleteMultipart: %v", err)
		}
		if info.Size != p1.Size+p3.Size {
			t.Errorf("size %d, want %d", info.Size, p1.Size+p3.Size)
		}
	})

	t.Run("SmallPart", func(t *testing.T) {
		key := prefix + "small.pdf"
		id := create(t, key)
		defer s.AbortMultipart(context.WithoutCancel(t.Context()), key, id)
		p1 := putPart(t, key, id, 1, newGen(30, 1000, nil), 1000)
		p2 := putPart(t, key, id, 2, newGen(31, 1000, nil), 1000)
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p1, p2}); err == nil {
			t.Fatalf("CompleteMultipart with a first part of 1000 bytes (< MinPartSize) succeeded")
		}
		// A single part may be small: it is the last one.
		if _, err := s.CompleteMultipart(t.Context(), key, id, []intake.Part{p2}); err != nil {
			t.Fatalf("CompleteMultipart with one small part: %v", err)
		}
	})

	t.Run("Abort", func(t *testing.T) {
		key := prefix + "abort.pdf"
		id := create(t, key)
		putPart(t, key, id, 1, newGen(40, intake.MinPartSize, nil), intake.MinPartSize)
		putPart(t, key, id, 2, newGen(41, 10, nil), 10)
		if err := s.AbortMultipart(t.Context(), key, id); err != nil {
			t.Fatalf("AbortMultipart: %v", err)
		}
		_, err := s.ListParts(t.Context(), key, id)
		wantNotFound(t, "ListParts after AbortMultipart", err)
		_, err = s.PutPart(t.Context(), key, id, 3, strings.NewReader("late"), 4)
		wantNotFound(t, "PutPart after AbortMultipart", err)
		_, err = s.CompleteMultipart(t.Context(), key, id, nil)
		if err == nil {
			t.Error("CompleteMultipart after AbortMultipart succeeded")
		}
		if err := s.AbortMultipart(t.Context(), key, id); err != nil {
			t.Errorf("second AbortMultipart: %v, want nil", err)
		}
		_, err = s.Stat(t.Context(), key)
		wantNotFound(t, "Stat after AbortMultipart", err)
	})

	t.Run("OtherKey", func(t *testing.T) {
		// An upload ID only counts together with its key.
		key := prefix + "owner.pdf"
		id := create(t, key)
		defer s.AbortMultipart(context.WithoutCancel(t.Context()), key, id)
		putPart(t, key, id, 1, newGen(50, 10, nil), 10)
		_, err := s.ListParts(t.Context(), prefix+"other.pdf", id)
		wantNotFound(t, "ListParts with another key", err)
		_, err = s.PutPart(t.Context(), prefix+"other.pdf", id, 2, strings.NewReader("x"), 1)
		wantNotFound(t, "PutPart with another key", err)
	})

	t.Run("PartSizeRequired", func(t *testing.T) {
		// S3 needs each part's length up front; -1 must fail, not buffer.
		key := prefix + "unsized.pdf"
		id := create(t, key)
		defer s.AbortMultipart(context.WithoutCancel(t.Context()), key, id)
		if _, err := s.PutPart(t.Context(), key, id, 1, strings.NewReader("abc"), -1); err == nil {
			t.Error("PutPart with size -1 succeeded")
		}
		if _, err := s.PutPart(t.Context(), key, id, 1, strings.NewReader("abc"), 5); err == nil {
			t.Error("PutPart with a short reader succeeded")
		}
		if _, err := s.PutPart(t.Context(), key, id, 0, strings.NewReader("abc"), 3); err == nil {
			t.Error("PutPart with part number 0 succeeded")
		}
		listParts(t, key, id)
	})
}

// heapPeak samples the live heap (after a GC) while a stream runs.
type heapPeak struct {
	base, peak uint64
	next       int64
}

func newHeapPeak() *heapPeak {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapPeak{base: m.HeapAlloc, peak: m.HeapAlloc}
}

// sample runs every 4 MiB of progress; a GC each time keeps garbage that
// is merely waiting for collection out of the measurement.
func (hp *heapPeak) sample(total int64) {
	if total < hp.next {
		return
	}
	hp.next = total + 4*mib
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	hp.peak = max(hp.peak, m.HeapAlloc)
}

func (hp *heapPeak) growth() int64 { return int64(hp.peak) - int64(hp.base) }

type countingReader struct {
	r     io.Reader
	total int64
	fn    func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.total += int64(n)
	c.fn(c.total)
	return n, err
}

// testStreaming stores and reads 64 MiB that exist only as a generator and
// checks that the live heap never grows by anything close to that.
func testStreaming(t *testing.T, s intake.BlobStore, prefix string) {
	const size = 64 * mib
	const bound = 32 * mib
	for _, declared := range []int64{size, -1} {
		t.Run(fmt.Sprintf("size=%d", declared), func(t *testing.T) {
			key := fmt.Sprintf("%sbig-%d.bin", prefix, declared)
			g := newGen(60, size, nil)
			hp := newHeapPeak()
			g.onRead = hp.sample
			start := time.Now()
			if _, err := s.Put(t.Context(), key, onlyReader{g}, declared); err != nil {
				t.Fatalf("Put: %v", err)
			}
			t.Logf("Put 64 MiB: heap grew by at most %.1f MiB, %v (GC sampling included)", float64(hp.growth())/mib, time.Since(start).Round(time.Millisecond))
			if hp.growth() > bound {
				t.Errorf("Put: heap grew by %.1f MiB while streaming 64 MiB, want < %d MiB", float64(hp.growth())/mib, bound/mib)
			}

			rc, _, err := s.Get(t.Context(), key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			hp = newHeapPeak()
			h := sha256.New()
			n, err := io.Copy(h, &countingReader{r: rc, fn: hp.sample})
			if err != nil || n != size {
				t.Fatalf("Get: read %d bytes, %v", n, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != g.sum() {
				t.Errorf("Get: SHA-256 %s, want %s", got, g.sum())
			}
			t.Logf("Get 64 MiB: heap grew by at most %.1f MiB", float64(hp.growth())/mib)
			if hp.growth() > bound {
				t.Errorf("Get: heap grew by %.1f MiB while streaming 64 MiB, want < %d MiB", float64(hp.growth())/mib, bound/mib)
			}
		})
	}
	t.Run("EarlyClose", func(t *testing.T) {
		key := fmt.Sprintf("%sbig-%d.bin", prefix, size)
		rc, _, err := s.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("Close before EOF: %v", err)
		}
	})
}

// testCancel cancels the context while Put is reading an endless stream.
// Put must stop reading soon, fail with the context's error and leave no
// object behind.
func testCancel(t *testing.T, s intake.BlobStore, prefix string) {
	const cancelAt = 8 * mib
	const maxAfter = 24 * mib
	for _, declared := range []int64{1 << 30, -1} {
		t.Run(fmt.Sprintf("size=%d", declared), func(t *testing.T) {
			key := fmt.Sprintf("%sput-%d.bin", prefix, declared)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			g := newGen(70, 1<<40, nil)
			// The store may read in another goroutine that outlives Put.
			var after atomic.Int64
			g.onRead = func(total int64) {
				if total >= cancelAt {
					cancel()
					after.Store(total - cancelAt)
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := s.Put(ctx, key, &stopReader{g: g, limit: cancelAt + maxAfter + mib}, declared)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("Put did not return within 2 minutes of cancellation")
			}
			if err == nil {
				t.Fatal("Put with a cancelled context succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put: %v; want an error wrapping context.Canceled", err)
			}
			if a := after.Load(); a > maxAfter {
				t.Errorf("Put read %d MiB after cancellation, want at most %d MiB", a/mib, maxAfter/mib)
			}
			_, err = s.Stat(t.Context(), key)
			wantNotFound(t, "Stat after cancelled Put", err)
		})
	}
}

// stopReader fails instead of feeding an endless stream to a store that
// ignores cancellation, so a broken store fails the test instead of hanging.
type stopReader struct {
	g     *gen
	limit int64
}

func (r *stopReader) Read(p []byte) (int, error) {
	if r.g.total >= r.limit {
		return 0, errors.New("storagetest: store kept reading long after the context was cancelled")
	}
	return r.g.Read(p)
}

func testConcurrent(t *testing.T, s intake.BlobStore, prefix string) {
	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	sums := make([]string, workers)
	for i := range workers {
		wg.Go(func() {
			g := newGen(uint64(80+i), 300*kib+int64(i), nil)
			_, errs[i] = s.Put(t.Context(), fmt.Sprintf("%sdoc-%d", prefix, i), onlyReader{g}, -1)
			sums[i] = g.sum()
		})
	}
	wg.Wait()
	for i := range workers {
		if errs[i] != nil {
			t.Fatalf("Put %d: %v", i, errs[i])
		}
		if sum, _, _ := readAll(t, s, fmt.Sprintf("%sdoc-%d", prefix, i)); sum != sums[i] {
			t.Errorf("doc-%d: SHA-256 %s, want %s", i, sum, sums[i])
		}
	}
}

// testDataWithEOF feeds readers that return their last bytes together with
// io.EOF (as fasthttp body streams do), at sizes on segment and part
// boundaries, through Put and PutPart.
func testDataWithEOF(t *testing.T, s intake.BlobStore, prefix string) {
	ctx := t.Context()
	for _, size := range []int{64 << 10, 1 << 20, intake.MinPartSize, 64<<10 + 1} {
		data := make([]byte, size)
		rand.Read(data)
		want := sha256.Sum256(data)
		for _, known := range []bool{true, false} {
			n := int64(size)
			if !known {
				n = -1
			}
			key := fmt.Sprintf("%sput-%d-%v", prefix, size, known)
			if _, err := s.Put(ctx, key, iotest.DataErrReader(bytes.NewReader(data)), n); err != nil {
				t.Fatalf("Put %d bytes (size known %v): %v", size, known, err)
			}
			if got := getSum(t, s, key); got != want {
				t.Fatalf("Put %d bytes (size known %v): read back differs", size, known)
			}
		}
		key := fmt.Sprintf("%spart-%d", prefix, size)
		id, err := s.CreateMultipart(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.PutPart(ctx, key, id, 1, iotest.DataErrReader(bytes.NewReader(data)), int64(size))
		if err != nil {
			t.Fatalf("PutPart %d bytes: %v", size, err)
		}
		if _, err := s.CompleteMultipart(ctx, key, id, []intake.Part{p}); err != nil {
			t.Fatalf("Complete %d bytes: %v", size, err)
		}
		if got := getSum(t, s, key); got != want {
			t.Fatalf("multipart of %d bytes: read back differs", size)
		}
	}
}

func getSum(t *testing.T, s intake.BlobStore, key string) [32]byte {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
