package minio

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey is returned for a key outside the intake.BlobStore rules.
var ErrInvalidKey = errors.New("invalid blob key")

// Key limits: 1024 bytes is the S3 limit, 255 per segment is MinIO's (it
// keeps segments as file names), so a key valid here works on every backend.
const (
	maxKeyLen     = 1024
	maxSegmentLen = 255
)

// checkKey enforces the intake.BlobStore key rules: [a-zA-Z0-9/._-], no
// empty, "." or ".." segment (so no leading, trailing or double slash).
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q not allowed", ErrInvalidKey, key, c)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: empty, \".\" or \"..\" path segment", ErrInvalidKey, key)
		}
		if len(seg) > maxSegmentLen {
			return fmt.Errorf("%w: path segment longer than %d bytes", ErrInvalidKey, maxSegmentLen)
		}
	}
	return nil
}
