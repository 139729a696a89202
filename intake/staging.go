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

// openStaging opens one segment, checking its recorded size.
func (h *TusHandler) openStaging(ctx context.Context, seg StagingSegment) (io.ReadCloser, error) {
	rc, info, err := h.cfg.Blobs.Get(ctx, seg.Key)
	if err != nil {
		return nil, fmt.Errorf("staging segment: %w", err)
	}
	if info.Size != seg.Size {
		rc.Close()
		return nil, fmt.Errorf("staging segment has %d bytes, recorded %d", info.Size, seg.Size)
	}
	return rc, nil
}

// stagingReader streams the staging segments in order, opening one at a
// time, and checks each has the recorded size.
type stagingReader struct {
	ctx  context.Context
	h    *TusHandler
	segs []StagingSegment
	cur  io.ReadCloser
	left int64
}

func (s *stagingReader) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			if len(s.segs) == 0 {
				return 0, io.EOF
			}
			rc, err := s.h.openStaging(s.ctx, s.segs[0])
			if err != nil {
				return 0, err
			}
			s.cur, s.left = rc, s.segs[0].Size
		}
		if len(p) > int(min(s.left, 1<<30)) {
			p = p[:s.left]
		}
		n, err := s.cur.Read(p)
		s.left -= int64(n)
		if err == io.EOF || s.left == 0 {
			if s.left != 0 {
				return n, fmt.Errorf("staging segment ended early: %w", io.ErrUnexpectedEOF)
			}
			s.close()
			s.segs = s.segs[1:]
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

func (s *stagingReader) close() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}
