package intake

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
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

// newStagingTag tells two writes of the same segment key apart: a request
// whose commit failed may have written seq n, and the retry (on this or
// another replica) writes seq n again with other bytes.
func newStagingTag() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// DefaultStagingCacheBytes bounds the staging cache of one process.
const DefaultStagingCacheBytes = 64 << 20

// stagingCache keeps the bytes of the staging segments this process wrote,
// so the part that consumes them is sent from memory instead of being read
// back from the blob store (with 1 MiB chunks that read-back was four GETs
// per 5 MiB part). It is only a shortcut: every segment is in the blob
// store before its offset is acknowledged, and a segment that is not here
// (written by another replica, evicted, process restarted) is read from
// the store. An entry is used only if its tag is the one the upload row
// records, so a rewritten key can never serve stale bytes.
type stagingCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	items map[string]*list.Element
	lru   *list.List // front: newest
}

type stagingEntry struct {
	key, tag string
	b        []byte
}

// newStagingCache returns a cache of at most max bytes; max < 0 disables it.
func newStagingCache(max int64) *stagingCache {
	if max == 0 {
		max = DefaultStagingCacheBytes
	}
	return &stagingCache{max: max, items: map[string]*list.Element{}, lru: list.New()}
}

// fits tells whether a segment of n bytes may be cached at all.
func (c *stagingCache) fits(n int64) bool { return n > 0 && n <= c.max && n < MinPartSize }

func (c *stagingCache) put(key, tag string, b []byte) {
	if !c.fits(int64(len(b))) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	c.items[key] = c.lru.PushFront(&stagingEntry{key: key, tag: tag, b: b})
	c.size += int64(len(b))
	for c.size > c.max {
		c.removeLocked(c.lru.Back().Value.(*stagingEntry).key)
	}
}

// get returns the bytes of seg if this process wrote exactly that version.
func (c *stagingCache) get(seg StagingSegment) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[seg.Key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*stagingEntry)
	if seg.Tag == "" || e.tag != seg.Tag || int64(len(e.b)) != seg.Size {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.b, true
}

func (c *stagingCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
}

func (c *stagingCache) removeLocked(key string) {
	el, ok := c.items[key]
	if !ok {
		return
	}
	c.size -= int64(len(el.Value.(*stagingEntry).b))
	c.lru.Remove(el)
	delete(c.items, key)
}

// deleteStaging drops a segment from the cache and the blob store.
func (h *TusHandler) deleteStaging(ctx context.Context, key string) error {
	h.staged.remove(key)
	return h.cfg.Blobs.Delete(ctx, key)
}

// openStaging opens one segment: from the cache when it holds this
// version, else from the blob store, checking the recorded size.
func (h *TusHandler) openStaging(ctx context.Context, seg StagingSegment) (io.ReadCloser, error) {
	if b, ok := h.staged.get(seg); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
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
