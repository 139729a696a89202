//go:build integration

package minio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"postbox/intake"
	"postbox/storage/storagetest"
)

// newTestStore creates a bucket unique to this run and removes it (with
// every object version) afterwards.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	endpoint := storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT")
	access := storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY")
	secret := storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY")
	var b [6]byte
	rand.Read(b[:])
	bucket := "postbox-test-" + hex.EncodeToString(b[:])
	s, err := New(endpoint, access, secret, bucket, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// MinIO's force delete drops objects, versions and pending uploads.
		if err := s.core.RemoveBucketWithOptions(ctx, bucket, miniogo.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("remove bucket %s: %v", bucket, err)
		}
	})
	if err := s.EnsureBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storagetest.TestBlobStore(t, func(t *testing.T) intake.BlobStore { return newTestStore(t) })
}

func TestBucketSettings(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	// A second call on a configured bucket must not fail (every start calls it).
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket again: %v", err)
	}
	v, err := s.core.GetBucketVersioning(ctx, s.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Enabled() {
		t.Errorf("versioning status %q, want Enabled", v.Status)
	}
	enc, err := s.core.GetBucketEncryption(ctx, s.bucket)
	if err != nil {
		t.Fatalf("GetBucketEncryption: %v", err)
	}
	if len(enc.Rules) != 1 || enc.Rules[0].Apply.SSEAlgorithm != "AES256" {
		t.Errorf("default encryption %+v, want one rule with SSE-S3 (AES256)", enc.Rules)
	}
	// Deletions must become final: a lifecycle rule drops versions that are
	// no longer current after the configured days, and bare delete markers.
	s.KeepDeleted(7)
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket with 7 days: %v", err)
	}
	lc, err := s.core.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		t.Fatalf("GetBucketLifecycle: %v", err)
	}
	if len(lc.Rules) != 1 {
		t.Fatalf("lifecycle rules %+v, want exactly ours", lc.Rules)
	}
	r := lc.Rules[0]
	if r.ID != LifecycleRuleID || r.Status != "Enabled" || r.NoncurrentVersionExpiration.NoncurrentDays != 7 || !bool(r.Expiration.DeleteMarker) {
		t.Errorf("lifecycle rule %+v: want %s enabled, noncurrent versions expire after 7 days, expired delete markers removed", r, LifecycleRuleID)
	}
}

// TestObjectsEncrypted checks each write path: single PUT, streamed PUT of
// unknown size (multipart inside minio-go) and our own multipart upload.
func TestObjectsEncrypted(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "enc/small", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "enc/stream", strings.NewReader(strings.Repeat("x", 100_000)), -1); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateMultipart(ctx, "enc/multipart")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PutPart(ctx, "enc/multipart", id, 1, strings.NewReader("part"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompleteMultipart(ctx, "enc/multipart", id, []intake.Part{p}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"enc/small", "enc/stream", "enc/multipart"} {
		oi, err := s.core.StatObject(ctx, s.bucket, key, miniogo.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := oi.Metadata.Get("X-Amz-Server-Side-Encryption"); got != "AES256" {
			t.Errorf("%s: x-amz-server-side-encryption = %q, want AES256", key, got)
		}
	}
}

// A Put of known size goes out as one streamed PUT, not as parts minio-go
// would buffer in memory (a multipart ETag ends in "-<parts>").
func TestPutKnownSizeIsOnePUT(t *testing.T) {
	s := newTestStore(t)
	const size = 40 << 20
	info, err := s.Put(t.Context(), "one/put", io.LimitReader(zeros{}, size), size)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != size || strings.Contains(info.ETag, "-") {
		t.Errorf("Put of %d bytes: %+v, want that size and a single-PUT ETag", size, info)
	}
	st, err := s.Stat(t.Context(), "one/put")
	if err != nil || st.Size != size || strings.Contains(st.ETag, "-") {
		t.Errorf("Stat = %+v, %v; want %d bytes stored by one PUT", st, err, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Versioning keeps what Delete removed until a lifecycle rule expires it
// (the latest version is gone, the data is not); staging segments are
// scratch copies and are gone at once, overwrites included.
func TestDeleteKeepsVersion(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name              string
		key               string
		versions, markers int
	}{
		{"document", "ver/doc", 2, 1},
		{"staging segment", intake.StagingKey("t", "u", 1), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"v1", "v2"} { // written twice, as a retried request does
				if _, err := s.Put(ctx, tc.key, strings.NewReader(v), 2); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Delete(ctx, tc.key); err != nil {
				t.Fatal(err)
			}
			var versions, markers int
			for o := range s.core.Client.ListObjects(ctx, s.bucket, miniogo.ListObjectsOptions{Prefix: tc.key, WithVersions: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				if o.IsDeleteMarker {
					markers++
				} else {
					versions++
				}
			}
			if versions != tc.versions || markers != tc.markers {
				t.Errorf("after two Puts and a Delete: %d versions, %d delete markers; want %d and %d", versions, markers, tc.versions, tc.markers)
			}
		})
	}
}

func TestPingUnreachable(t *testing.T) {
	s, err := New("127.0.0.1:1", "ak", "sk", "postbox-blobs", false)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping of a closed port succeeded")
	}
	if d := time.Since(start); d > pingTimeout+time.Second {
		t.Errorf("Ping took %v, want at most about %v", d, pingTimeout)
	}
}

func TestPingMissingBucket(t *testing.T) {
	s := newTestStore(t)
	other, err := New(storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT"),
		storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY"),
		storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY"), s.bucket+"-missing", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Ping(t.Context()); err == nil {
		t.Fatal("Ping of a missing bucket succeeded")
	}
}
