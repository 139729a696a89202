package intake

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// StagingPrefix starts the key of every staging segment. Segments are
// scratch copies of bytes that a part will hold: a store may keep no older
// versions of keys under this prefix (the MinIO store excludes it from
// versioning), so a deleted segment is gone at once instead of lingering
// for the undo window of real objects.
const StagingPrefix = "staging/"

// StagingKey is where segment seq of an upload lives.
func StagingKey(tenantID, uploadID string, seq int64) string {
	return StagingPrefix + tenantID + "/" + uploadID + "/" + strconv.FormatInt(seq, 10)
}

// stagingReader streams the upload's staging segments in order.
func stagingReader(ctx context.Context, blobs BlobStore, segs []StagingSegment) *blobSeq {
	refs := make([]blobRef, len(segs))
	for i, s := range segs {
		refs[i] = blobRef{key: s.Key, size: s.Size, what: "staging segment"}
	}
	return &blobSeq{ctx: ctx, blobs: blobs, refs: refs}
}

// partialsReader streams the objects of the partial uploads in order.
func partialsReader(ctx context.Context, blobs BlobStore, parts []*Upload) *blobSeq {
	refs := make([]blobRef, len(parts))
	for i, p := range parts {
		refs[i] = blobRef{key: p.BlobKey, size: p.Length, what: "partial upload " + p.ID}
	}
	return &blobSeq{ctx: ctx, blobs: blobs, refs: refs}
}

// blobRef is a stored object and the size recorded for it.
type blobRef struct {
	key  string
	size int64
	what string // names it in errors
}

// blobSeq streams stored objects one after the other, opening one at a
// time, and checks that each has its recorded size.
type blobSeq struct {
	ctx   context.Context
	blobs BlobStore
	refs  []blobRef
	cur   io.ReadCloser
	left  int64
}

func (s *blobSeq) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			if len(s.refs) == 0 {
				return 0, io.EOF
			}
			ref := s.refs[0]
			rc, info, err := s.blobs.Get(s.ctx, ref.key)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", ref.what, err)
			}
			if info.Size != ref.size {
				rc.Close()
				return 0, fmt.Errorf("%s has %d bytes, recorded %d", ref.what, info.Size, ref.size)
			}
			s.cur, s.left = rc, ref.size
		}
		if len(p) > int(min(s.left, 1<<30)) {
			p = p[:s.left]
		}
		n, err := s.cur.Read(p)
		s.left -= int64(n)
		if err == io.EOF || s.left == 0 {
			if s.left != 0 {
				return n, fmt.Errorf("%s ended early: %w", s.refs[0].what, io.ErrUnexpectedEOF)
			}
			s.close()
			s.refs = s.refs[1:]
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

func (s *blobSeq) close() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}
