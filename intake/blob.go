// Package intake holds the Einmal-PIN rules, the tus 1.0.0 upload protocol,
// drafts and the submission of uploaded documents into a Vorgang.
package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrBlobNotFound is returned for a key or multipart upload that does not exist.
var ErrBlobNotFound = errors.New("blob not found")

// BlobInfo describes a stored object.
type BlobInfo struct {
	Key     string
	Size    int64
	ETag    string
	Created time.Time
}

// Part is one finished part of a multipart upload.
type Part struct {
	Number int // 1-based, increasing
	ETag   string
	Size   int64
}

// BlobStore keeps document bytes. Implementations stream: no method may hold a
// whole object in memory. Objects are encrypted at rest by every
// implementation. Keys are slash-separated, made only of [a-zA-Z0-9/._-].
//
// Multipart uploads let a resumable upload write parts as they arrive and
// join them at the end; every part except the last is at least
// MinPartSize bytes (the S3 rule), which callers must respect.
type BlobStore interface {
	// Put stores r under key. size is the exact length, or -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) (BlobInfo, error)
	// Get opens the object for streaming. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, BlobInfo, error)
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	CreateMultipart(ctx context.Context, key string) (uploadID string, err error)
	// PutPart writes part number n (1-based). Writing the same n again replaces it.
	PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (Part, error)
	// ListParts returns the parts written so far, ordered by number.
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) (BlobInfo, error)
	// AbortMultipart drops the upload and its parts; aborting twice is not an error.
	AbortMultipart(ctx context.Context, key, uploadID string) error

	// Ping tells whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
}

// MinPartSize is the smallest size of a multipart part other than the last.
const MinPartSize = 5 << 20

// MaxCopyPartSize is the largest object a PartCopier copies into one part
// (S3's limit for UploadPartCopy).
const MaxCopyPartSize = 5 << 30

// PartCopier is a BlobStore that can make a part of a multipart upload out
// of a whole stored object without the bytes leaving the store (S3
// UploadPartCopy). Joining partial uploads uses it when the store has it.
type PartCopier interface {
	// CopyPart writes part number n (1-based) of the multipart upload as a
	// copy of the object srcKey, which has size bytes.
	CopyPart(ctx context.Context, key, uploadID string, n int, srcKey string, size int64) (Part, error)
}

// ErrInvalidBlobKey is returned for a key outside the BlobStore rules.
var ErrInvalidBlobKey = errors.New("invalid blob key")

// Key limits: 1024 bytes is the S3 limit, 255 per segment is MinIO's (it
// keeps segments as file names), so a key valid here works on every backend.
const (
	maxKeyLen     = 1024
	maxSegmentLen = 255
)

// ValidateBlobKey enforces the BlobStore key rules every implementation applies: [a-zA-Z0-9/._-], no
// empty, "." or ".." segment (so no leading, trailing or double slash).
func ValidateBlobKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidBlobKey)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidBlobKey, maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q not allowed", ErrInvalidBlobKey, key, c)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: empty, \".\" or \"..\" path segment", ErrInvalidBlobKey, key)
		}
		if len(seg) > maxSegmentLen {
			return fmt.Errorf("%w: path segment longer than %d bytes", ErrInvalidBlobKey, maxSegmentLen)
		}
	}
	return nil
}
