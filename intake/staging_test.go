package intake

import (
	"bytes"
	"testing"
)

func TestStagingCache(t *testing.T) {
	seg := func(key, tag string, n int) StagingSegment { return StagingSegment{Key: key, Size: int64(n), Tag: tag} }
	data := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	cases := []struct {
		name string
		max  int64
		puts []stagingEntry
		ask  StagingSegment
		want []byte // nil: a miss, read from the store
	}{
		{"same key and tag", 10, []stagingEntry{{"k", "t1", data(4, 'a')}}, seg("k", "t1", 4), data(4, 'a')},
		{"key rewritten by another request (other tag)", 10, []stagingEntry{{"k", "t1", data(4, 'a')}}, seg("k", "t2", 4), nil},
		{"row without tag (written before the cache existed)", 10, []stagingEntry{{"k", "t1", data(4, 'a')}}, seg("k", "", 4), nil},
		{"recorded size differs", 10, []stagingEntry{{"k", "t1", data(4, 'a')}}, seg("k", "t1", 5), nil},
		{"newer write of the key replaces the older", 10, []stagingEntry{{"k", "t1", data(4, 'a')}, {"k", "t2", data(3, 'b')}}, seg("k", "t2", 3), data(3, 'b')},
		{"oldest entry evicted over the bound", 10, []stagingEntry{{"old", "t", data(6, 'a')}, {"new", "t", data(6, 'b')}}, seg("old", "t", 6), nil},
		{"newest entry kept over the bound", 10, []stagingEntry{{"old", "t", data(6, 'a')}, {"new", "t", data(6, 'b')}}, seg("new", "t", 6), data(6, 'b')},
		{"larger than the bound: not kept", 3, []stagingEntry{{"k", "t", data(4, 'a')}}, seg("k", "t", 4), nil},
		{"turned off", -1, []stagingEntry{{"k", "t", data(4, 'a')}}, seg("k", "t", 4), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newStagingCache(tc.max)
			for _, p := range tc.puts {
				c.put(p.key, p.tag, p.b)
			}
			got, ok := c.get(tc.ask)
			if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
				t.Fatalf("get = %q, %v; want %q", got, ok, tc.want)
			}
			if c.size > max(c.max, 0) {
				t.Errorf("cache holds %d bytes, bound %d", c.size, c.max)
			}
		})
	}
	t.Run("removed segment is gone and its bytes no longer counted", func(t *testing.T) {
		c := newStagingCache(0)
		c.put("k", "t", data(4, 'a'))
		c.remove("k")
		if _, ok := c.get(seg("k", "t", 4)); ok || c.size != 0 {
			t.Fatalf("after remove: hit %v, size %d", ok, c.size)
		}
	})
}
