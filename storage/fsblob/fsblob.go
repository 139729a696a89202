// Package fsblob is the embedded intake.BlobStore: blobs are files under a
// root directory, encrypted at rest with a key held by the binary.
//
// Layout under the root:
//
//	objects/ab/<name>       one file per object
//	uploads/<id>/key        the object name a multipart upload belongs to
//	uploads/<id>/NNNNN.part one file per part
//	tmp/                    files being written; renamed into place when complete
//
// File names are an HMAC of the object key rather than the key itself: keys
// never reach the file system as paths (no traversal, no clash between
// "a" and "a/b", no case folding on macOS), and a disk image does not list
// which documents exist.
package fsblob

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"postbox/intake"
)

// DefaultRoot is where the embedded mode keeps blobs.
const DefaultRoot = "./data/blobs"

// KeySize is the length of the store key.
const KeySize = 32

// staleTemp is how old a temp file must be before New removes it; younger
// ones may belong to another process writing into the same root.
const staleTemp = 24 * time.Hour

// Store keeps encrypted blobs under a directory. It is safe for concurrent
// use; concurrent writes to one key end with one of them complete.
type Store struct {
	root    string
	secret  []byte // HKDF secret for per-blob keys
	nameKey []byte // HMAC key for file names
}

var _ intake.BlobStore = (*Store)(nil)

// New opens (and creates) a store under root; an empty root means
// DefaultRoot. key must be KeySize random bytes; losing it loses every blob.
func New(root string, key []byte) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("fsblob: key must be %d bytes, got %d", KeySize, len(key))
	}
	if root == "" {
		root = DefaultRoot
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fsblob: root %q: %w", root, err)
	}
	for _, d := range []string{"objects", "uploads", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("fsblob: create %s: %w", d, err)
		}
	}
	secret, err := hkdf.Key(sha256.New, key, nil, "postbox fsblob v1 secret", 32)
	if err != nil {
		return nil, fmt.Errorf("fsblob: derive key: %w", err)
	}
	nameKey, err := hkdf.Key(sha256.New, key, nil, "postbox fsblob v1 names", 32)
	if err != nil {
		return nil, fmt.Errorf("fsblob: derive key: %w", err)
	}
	s := &Store{root: root, secret: secret, nameKey: nameKey}
	s.removeStaleTemp()
	return s, nil
}

// removeStaleTemp drops what a crash left in tmp. Best effort: a leftover
// only costs disk space.
func (s *Store) removeStaleTemp() {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.RemoveAll(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
}

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

func (s *Store) name(key string) string {
	m := hmac.New(sha256.New, s.nameKey)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Store) objectPath(key string) string {
	n := s.name(key)
	return filepath.Join(s.root, "objects", n[:2], n)
}

func objectIdent(key string) string { return "object\x00" + key }

// Put implements intake.BlobStore.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob put: %w", err)
	}
	info, err := s.writeObject(ctx, key, r, size)
	if err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob put %q: %w", key, err)
	}
	return info, nil
}

func (s *Store) writeObject(ctx context.Context, key string, r io.Reader, size int64) (intake.BlobInfo, error) {
	dst := s.objectPath(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return intake.BlobInfo{}, err
	}
	h, mod, err := s.writeBlob(ctx, dst, objectIdent(key), r, size)
	if err != nil {
		return intake.BlobInfo{}, err
	}
	return intake.BlobInfo{Key: key, Size: h.size, ETag: h.etag(), Created: mod}, nil
}

// writeBlob encrypts r into a temp file and renames it to dst, so dst
// holds either the old or the complete new blob, never a partial one. The
// directory of dst must exist: an upload directory that vanished means the
// upload was aborted, and must not come back.
func (s *Store) writeBlob(ctx context.Context, dst, ident string, r io.Reader, size int64) (h header, mod time.Time, err error) {
	if size < -1 {
		return h, mod, fmt.Errorf("invalid size %d", size)
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return h, mod, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w, err := newSealer(f, s.secret, ident)
	if err != nil {
		return h, mod, err
	}
	if err := copyExact(w, ctxReader{ctx, r}, size); err != nil {
		return h, mod, err
	}
	if err := w.finish(); err != nil {
		return h, mod, err
	}
	if err := f.Sync(); err != nil {
		return h, mod, err
	}
	fi, err := f.Stat()
	if err != nil {
		return h, mod, err
	}
	if err := f.Close(); err != nil {
		return h, mod, err
	}
	if err := ctx.Err(); err != nil {
		return h, mod, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return h, mod, err
	}
	// Without syncing the directory the rename may be lost on power failure
	// although the write was reported done.
	return w.hdr, fi.ModTime(), syncDir(filepath.Dir(dst))
}

// copyExact copies r into w; with size ≥ 0 the reader must deliver exactly
// size bytes, so a wrong declared length fails instead of storing a short
// or silently cut document.
func copyExact(w io.ReaderFrom, r io.Reader, size int64) error {
	if size < 0 {
		_, err := w.ReadFrom(r)
		return err
	}
	n, err := w.ReadFrom(io.LimitReader(r, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	var one [1]byte
	m, err := io.ReadFull(r, one[:])
	if m > 0 {
		return fmt.Errorf("reader has more than the declared %d bytes", size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// open opens the blob at path and checks its header and length.
func (s *Store) open(path, ident string) (*os.File, header, cipher.AEAD, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, header{}, nil, intake.ErrBlobNotFound
	}
	if err != nil {
		return nil, header{}, nil, err
	}
	h, err := openBlob(f)
	if err != nil {
		f.Close()
		return nil, h, nil, err
	}
	aead, err := blobAEAD(s.secret, h.salt[:], ident)
	if err != nil {
		f.Close()
		return nil, h, nil, err
	}
	return f, h, aead, nil
}

// Get implements intake.BlobStore. The reader fails with ErrCorrupt as soon
// as a segment does not authenticate; bytes already returned were genuine.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return nil, intake.BlobInfo{}, fmt.Errorf("fsblob get: %w", err)
	}
	f, h, aead, err := s.open(s.objectPath(key), objectIdent(key))
	if err != nil {
		return nil, intake.BlobInfo{}, fmt.Errorf("fsblob get %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, intake.BlobInfo{}, fmt.Errorf("fsblob get %q: %w", key, err)
	}
	return blobReader{newOpener(ctx, f, aead, h)}, intake.BlobInfo{Key: key, Size: h.size, ETag: h.etag(), Created: fi.ModTime()}, nil
}

type blobReader struct{ *opener }

func (b blobReader) Close() error { return b.f.Close() }

// Stat implements intake.BlobStore. It authenticates the last segment, so
// the reported size is one the key holder wrote.
func (s *Store) Stat(ctx context.Context, key string) (intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return intake.BlobInfo{}, err
	}
	f, h, aead, err := s.open(s.objectPath(key), objectIdent(key))
	if err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob stat %q: %w", key, err)
	}
	defer f.Close()
	if err := verifyLast(f, aead, h); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob stat %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return intake.BlobInfo{}, fmt.Errorf("fsblob stat %q: %w", key, err)
	}
	return intake.BlobInfo{Key: key, Size: h.size, ETag: h.etag(), Created: fi.ModTime()}, nil
}

// Delete implements intake.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := intake.ValidateBlobKey(key); err != nil {
		return fmt.Errorf("fsblob delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(s.objectPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob delete %q: %w", key, err)
	}
	return nil
}

// Ping implements intake.BlobStore: the store is ready when it can create
// a file under its root.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir(), "ping-*")
	if err != nil {
		return fmt.Errorf("fsblob ping: %w", err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("ping"))
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("fsblob ping: %w", err)
	}
	return nil
}
