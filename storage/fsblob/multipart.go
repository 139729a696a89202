package fsblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"postbox/intake"
)

// maxParts is the S3 limit on part numbers.
const maxParts = 10000

const partSuffix = ".part"

func partIdent(uploadID string, n int) string {
	return "part\x00" + uploadID + "\x00" + strconv.Itoa(n)
}

// uploadDir validates uploadID before it becomes a path: it must be the
// 32 lowercase hex digits CreateMultipart hands out.
func (s *Store) uploadDir(uploadID string) (string, error) {
	if len(uploadID) != 32 || strings.Trim(uploadID, "0123456789abcdef") != "" {
		return "", fmt.Errorf("invalid upload ID %q", uploadID)
	}
	return filepath.Join(s.root, "uploads", uploadID), nil
}

func partPath(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%05d%s", n, partSuffix))
}

// upload returns the directory of an upload after checking it belongs to
// key; an upload of another key is reported as missing, like S3 does.
func (s *Store) upload(key, uploadID string) (string, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return "", err
	}
	dir, err := s.uploadDir(uploadID)
	if err != nil {
		return "", err
	}
	owner, err := os.ReadFile(filepath.Join(dir, "key"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", intake.ErrBlobNotFound
	}
	if err != nil {
		return "", err
	}
	if !bytes.Equal(owner, []byte(s.name(key))) {
		return "", intake.ErrBlobNotFound
	}
	return dir, nil
}

// CreateMultipart implements intake.BlobStore.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return "", fmt.Errorf("fsblob create multipart: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b[:])
	dir, _ := s.uploadDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("fsblob create multipart %q: %w", key, err)
	}
	// The owner file is what makes the upload exist; an interrupted create
	// leaves an empty directory that every call treats as missing.
	if err := writeFileSync(filepath.Join(dir, "key"), []byte(s.name(key))); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("fsblob create multipart %q: %w", key, err)
	}
	return id, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// PutPart implements intake.BlobStore. The size must be known (as S3
// requires for a part); the part replaces an earlier one with the same
// number atomically.
func (s *Store) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (intake.Part, error) {
	if n < 1 || n > maxParts {
		return intake.Part{}, fmt.Errorf("fsblob put part: part number %d outside 1..%d", n, maxParts)
	}
	if size < 0 {
		return intake.Part{}, fmt.Errorf("fsblob put part: size must be known, got %d", size)
	}
	dir, err := s.upload(key, uploadID)
	if err != nil {
		return intake.Part{}, fmt.Errorf("fsblob put part %d of %q: %w", n, key, err)
	}
	h, _, err := s.writeBlob(ctx, partPath(dir, n), partIdent(uploadID, n), r, size)
	if errors.Is(err, fs.ErrNotExist) {
		err = intake.ErrBlobNotFound // aborted while we wrote
	}
	if err != nil {
		return intake.Part{}, fmt.Errorf("fsblob put part %d of %q: %w", n, key, err)
	}
	return intake.Part{Number: n, ETag: h.etag(), Size: h.size}, nil
}

// ListParts implements intake.BlobStore.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]intake.Part, error) {
	dir, err := s.upload(key, uploadID)
	if err != nil {
		return nil, fmt.Errorf("fsblob list parts of %q: %w", key, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob list parts of %q: %w", key, err)
	}
	var parts []intake.Part
	for _, e := range entries {
		num, ok := strings.CutSuffix(e.Name(), partSuffix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > maxParts {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := s.partHeader(dir, uploadID, n)
		if err != nil {
			return nil, fmt.Errorf("fsblob list parts of %q: part %d: %w", key, n, err)
		}
		parts = append(parts, intake.Part{Number: n, ETag: h.etag(), Size: h.size})
	}
	// ReadDir sorts by name and names are zero-padded, but do not rely on it.
	slices.SortFunc(parts, func(a, b intake.Part) int { return a.Number - b.Number })
	return parts, nil
}

func (s *Store) partHeader(dir, uploadID string, n int) (header, error) {
	f, h, _, err := s.open(partPath(dir, n), partIdent(uploadID, n))
	if err != nil {
		return h, err
	}
	f.Close()
	return h, nil
}

// CompleteMultipart implements intake.BlobStore. Like S3 it requires the
// listed parts in increasing order with matching ETags and every part but
// the last at least intake.MinPartSize; parts not listed are discarded.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []intake.Part) (intake.BlobInfo, error) {
	fail := func(err error) (intake.BlobInfo, error) {
		return intake.BlobInfo{}, fmt.Errorf("fsblob complete multipart %q: %w", key, err)
	}
	dir, err := s.upload(key, uploadID)
	if err != nil {
		return fail(err)
	}
	if len(parts) == 0 {
		return fail(errors.New("no parts"))
	}
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return fail(fmt.Errorf("parts not in increasing order at part %d", p.Number))
		}
		if p.Number < 1 || p.Number > maxParts {
			return fail(fmt.Errorf("part number %d outside 1..%d", p.Number, maxParts))
		}
		h, err := s.partHeader(dir, uploadID, p.Number)
		if errors.Is(err, intake.ErrBlobNotFound) {
			return fail(fmt.Errorf("part %d was not uploaded", p.Number))
		}
		if err != nil {
			return fail(fmt.Errorf("part %d: %w", p.Number, err))
		}
		if h.etag() != p.ETag {
			return fail(fmt.Errorf("part %d: ETag %q does not match the stored part", p.Number, p.ETag))
		}
		if i < len(parts)-1 && h.size < intake.MinPartSize {
			return fail(fmt.Errorf("part %d has %d bytes, less than the minimum %d", p.Number, h.size, intake.MinPartSize))
		}
	}
	pr := &partsReader{ctx: ctx, s: s, dir: dir, uploadID: uploadID, parts: parts}
	defer pr.close()
	info, err := s.writeObject(ctx, key, pr, -1)
	if err != nil {
		return fail(err)
	}
	// The object is in place; a leftover upload directory only wastes space.
	removeUpload(dir)
	return info, nil
}

// partsReader streams the decrypted parts one after the other, opening
// one file at a time (an upload may have thousands of parts).
type partsReader struct {
	ctx      context.Context
	s        *Store
	dir      string
	uploadID string
	parts    []intake.Part
	cur      *opener
}

func (pr *partsReader) Read(p []byte) (int, error) {
	for {
		if pr.cur == nil {
			if len(pr.parts) == 0 {
				return 0, io.EOF
			}
			part := pr.parts[0]
			f, h, aead, err := pr.s.open(partPath(pr.dir, part.Number), partIdent(pr.uploadID, part.Number))
			if err != nil {
				return 0, fmt.Errorf("part %d: %w", part.Number, err)
			}
			// A part rewritten since the check above must not slip in.
			if h.etag() != part.ETag {
				f.Close()
				return 0, fmt.Errorf("part %d changed during completion", part.Number)
			}
			pr.cur = newOpener(pr.ctx, f, aead, h)
		}
		n, err := pr.cur.Read(p)
		if err == io.EOF {
			pr.close()
			pr.parts = pr.parts[1:]
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (pr *partsReader) close() {
	if pr.cur != nil {
		pr.cur.f.Close()
		pr.cur = nil
	}
}

// AbortMultipart implements intake.BlobStore.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	dir, err := s.upload(key, uploadID)
	if errors.Is(err, intake.ErrBlobNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsblob abort multipart %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := removeUpload(dir); err != nil {
		return fmt.Errorf("fsblob abort multipart %q: %w", key, err)
	}
	return nil
}

// removeUpload drops the owner file first, so the upload is gone at once
// even if removing thousands of parts is interrupted.
func removeUpload(dir string) error {
	if err := os.Remove(filepath.Join(dir, "key")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(dir)
}
