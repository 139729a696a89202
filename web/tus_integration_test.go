//go:build integration

package web

import (
	"context"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/intake"
	"postbox/storage/minio"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

// serverBackend is server mode: a fresh database on the shared PostgreSQL and a bucket of its
// own in the shared MinIO, removed with every object version afterwards.
func serverBackend(t *testing.T) tusBackend {
	dsn := storagetest.FreshPostgres(t)
	endpoint := storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT")
	access := storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY")
	secret := storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY")
	bucket := "postbox-tus-" + randHex(6)
	open := func(t *testing.T) (*sqldb.Store, intake.BlobStore) {
		db, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		blobs, err := minio.New(endpoint, access, secret, bucket, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := blobs.EnsureBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db, blobs
	}
	db, blobs := open(t)
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
	return tusBackend{DB: db, Blobs: blobs, Reopen: open}
}

func TestTusProtocolServer(t *testing.T) {
	runTusProtocolCases(t, serverBackend)
}
