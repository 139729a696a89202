//go:build integration

package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/storage/minio"
	"postbox/storage/postgres"
	"postbox/storage/storagetest"
)

// TestDraftSubmitAndDownloadServerMode runs the PIN flow on a fresh
// PostgreSQL database and a bucket of its own in the real MinIO.
func TestDraftSubmitAndDownloadServerMode(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, storagetest.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	endpoint := storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT")
	access := storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY")
	secret := storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY")
	var b [6]byte
	rand.Read(b[:])
	bucket := "postbox-pin-" + hex.EncodeToString(b[:])
	blobs, err := minio.New(endpoint, access, secret, bucket, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := blobs.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := miniogo.New(endpoint, &miniogo.Options{Creds: credentials.NewStaticV4(access, secret, "")})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.RemoveBucketWithOptions(ctx, bucket, miniogo.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("remove bucket %s: %v", bucket, err)
		}
	})
	testDraftSubmitAndDownload(t, newPINDeskOn(t, true, db, blobs))
}
