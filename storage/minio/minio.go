// Package minio is the intake.BlobStore for server mode: objects live in an
// S3 bucket (MinIO in our deployments) with versioning and SSE-S3.
package minio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/minio/minio-go/v7/pkg/sse"

	"postbox/intake"
)

// streamPartSize bounds what minio-go buffers for a Put of unknown size.
// Without it minio-go sizes parts for a 5 TiB object (≈ 537 MiB each) and
// holds one in memory; 16 MiB still allows objects up to 156 GiB.
const streamPartSize = 16 << 20

// maxSinglePut is S3's limit for one PUT; minPartSize is the smallest part
// size minio-go accepts as an option.
const (
	maxSinglePut = 5 << 30
	minPartSize  = 5 << 20
)

// pingTimeout keeps /readyz fast when the server hangs.
const pingTimeout = 3 * time.Second

// DefaultKeepDeletedDays is how long the bucket keeps the data of a deleted
// or replaced object (see KeepDeleted).
const DefaultKeepDeletedDays = 30

// Store keeps blobs in one S3 bucket. It is safe for concurrent use.
type Store struct {
	core        *miniogo.Core
	bucket      string
	keepDeleted int // days; see KeepDeleted
}

var (
	_ intake.BlobStore  = (*Store)(nil)
	_ intake.PartCopier = (*Store)(nil)
)

// New returns a store for bucket at endpoint (host[:port], no scheme; useTLS
// selects https). It does not contact the server; see EnsureBucket and Ping.
func New(endpoint, accessKey, secretKey, bucket string, useTLS bool) (*Store, error) {
	if err := checkEndpoint(endpoint); err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", endpoint, err)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("s3 bucket %q: %w", bucket, err)
	}
	core, err := miniogo.NewCore(endpoint, &miniogo.Options{
		Creds:  credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure: useTLS,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", endpoint, err)
	}
	return &Store{core: core, bucket: bucket, keepDeleted: DefaultKeepDeletedDays}, nil
}

// KeepDeleted sets for how many days the bucket keeps the data of deleted
// or replaced objects (versioning: a delete only adds a marker) before its
// lifecycle rule removes it for good; EnsureBucket applies it. Without such
// a rule a deletion by the retention run or an erasure request would never
// remove the bytes.
func (s *Store) KeepDeleted(days int) { s.keepDeleted = days }

// checkEndpoint accepts host or host:port. minio-go would accept a URL
// with a scheme and treat some typos as a host, so "http//x" would only
// fail at the first request with a confusing error.
func checkEndpoint(endpoint string) error {
	if endpoint == "" {
		return errors.New("empty")
	}
	if strings.Contains(endpoint, "://") {
		return errors.New("must be host[:port] without a scheme (TLS is a separate setting)")
	}
	if strings.ContainsAny(endpoint, "/?#@ \t\r\n\\") {
		return errors.New("must be host[:port] without scheme, path or credentials")
	}
	host := endpoint
	if strings.Contains(endpoint, ":") {
		h, port, err := net.SplitHostPort(endpoint)
		if err != nil {
			return err
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port %q", port)
		}
		host = h
	}
	if net.ParseIP(host) == nil && !s3utils.IsValidDomain(host) {
		return fmt.Errorf("invalid host %q", host)
	}
	return nil
}

// EnsureBucket creates the bucket if needed and turns on versioning (not
// for staging segments) and default SSE-S3 encryption. It is safe to call on every start.
func (s *Store) EnsureBucket(ctx context.Context) error {
	exists, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 bucket %q: %w", s.bucket, err)
	}
	if !exists {
		err := s.core.MakeBucket(ctx, s.bucket, miniogo.MakeBucketOptions{})
		// Another instance may have created it in the meantime.
		if err != nil && errCode(err) != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("s3 create bucket %q: %w", s.bucket, err)
		}
	}
	// Staging segments are scratch copies: a deleted one must be gone at
	// once, not kept as a noncurrent version for the undo window.
	versioning := miniogo.BucketVersioningConfiguration{
		Status:           "Enabled",
		ExcludedPrefixes: []miniogo.ExcludedPrefix{{Prefix: intake.StagingPrefix}},
	}
	if err := s.core.SetBucketVersioning(ctx, s.bucket, versioning); err != nil {
		return fmt.Errorf("s3 enable versioning on %q: %w", s.bucket, err)
	}
	if err := s.core.SetBucketEncryption(ctx, s.bucket, sse.NewConfigurationSSES3()); err != nil {
		return fmt.Errorf("s3 set default encryption on %q (MinIO needs MINIO_KMS_SECRET_KEY or a KMS for SSE-S3): %w", s.bucket, err)
	}
	if err := s.core.SetBucketLifecycle(ctx, s.bucket, expireDeleted(s.keepDeleted)); err != nil {
		return fmt.Errorf("s3 set lifecycle rule on %q: %w", s.bucket, err)
	}
	return nil
}

// LifecycleRuleID names the bucket's rule that makes deletions final.
const LifecycleRuleID = "postbox-expire-deleted"

// expireDeleted is the bucket's lifecycle: versions that are no longer
// current (deleted or replaced objects) go after days,
// and delete markers with nothing left behind them go too.
func expireDeleted(days int) *lifecycle.Configuration {
	return &lifecycle.Configuration{Rules: []lifecycle.Rule{{
		ID:                          LifecycleRuleID,
		Status:                      "Enabled",
		NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: lifecycle.ExpirationDays(days)},
		Expiration:                  lifecycle.Expiration{DeleteMarker: true},
	}}}
}

func errCode(err error) string {
	var er miniogo.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// fail wraps err for op on key, mapping the S3 "missing" codes to
// intake.ErrBlobNotFound. minio-go does not always keep the context error
// in its chain, so it is added when the context ended.
func fail(ctx context.Context, op, key string, err error) error {
	switch errCode(err) {
	case miniogo.NoSuchKey, miniogo.NoSuchUpload:
		return fmt.Errorf("s3 %s %q: %w", op, key, intake.ErrBlobNotFound)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = errors.Join(err, cerr)
	}
	return fmt.Errorf("s3 %s %q: %w", op, key, err)
}

// putOptions requests SSE-S3 on every write, so objects are encrypted even
// if the bucket default is missing or was changed.
func putOptions() miniogo.PutObjectOptions {
	return miniogo.PutObjectOptions{
		ServerSideEncryption: encrypt.NewSSE(),
		ContentType:          "application/octet-stream",
	}
}

// Put implements intake.BlobStore.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("s3 put: %w", err)
	}
	if size < -1 {
		return intake.BlobInfo{}, fmt.Errorf("s3 put %q: invalid size %d", key, size)
	}
	if size == 0 {
		// minio-go may not read the body of an empty object at all.
		if err := probeEOF(r); err != nil {
			return intake.BlobInfo{}, fmt.Errorf("s3 put %q: %w", key, err)
		}
	}
	opts := putOptions()
	switch {
	case size < 0:
		opts.PartSize = streamPartSize
	case size <= maxSinglePut:
		// One streamed PUT: minio-go cuts a known size above its 16 MiB
		// default into parts and holds each in memory while sending it.
		opts.PartSize = uint64(max(size, minPartSize))
	}
	info, err := s.core.Client.PutObject(ctx, s.bucket, key, newExactReader(ctx, r, size), size, opts)
	if err != nil {
		return intake.BlobInfo{}, fail(ctx, "put", key, err)
	}
	// minio-go reports no date for a PUT; the server's Last-Modified lies
	// within this call, so local time is close enough without another HEAD.
	return intake.BlobInfo{Key: key, Size: info.Size, ETag: info.ETag, Created: time.Now()}, nil
}

// Get implements intake.BlobStore. Core.GetObject issues the request now,
// so a missing key fails here rather than on the first Read.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return nil, intake.BlobInfo{}, fmt.Errorf("s3 get: %w", err)
	}
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, key, miniogo.GetObjectOptions{})
	if err != nil {
		return nil, intake.BlobInfo{}, fail(ctx, "get", key, err)
	}
	return body, blobInfo(key, oi), nil
}

func blobInfo(key string, oi miniogo.ObjectInfo) intake.BlobInfo {
	return intake.BlobInfo{Key: key, Size: oi.Size, ETag: oi.ETag, Created: oi.LastModified}
}

// Stat implements intake.BlobStore.
func (s *Store) Stat(ctx context.Context, key string) (intake.BlobInfo, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("s3 stat: %w", err)
	}
	oi, err := s.core.StatObject(ctx, s.bucket, key, miniogo.StatObjectOptions{})
	if err != nil {
		return intake.BlobInfo{}, fail(ctx, "stat", key, err)
	}
	return blobInfo(key, oi), nil
}

// Delete implements intake.BlobStore. With versioning on this adds a delete
// marker; earlier versions stay until a lifecycle rule expires them.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := intake.ValidateBlobKey(key); err != nil {
		return fmt.Errorf("s3 delete: %w", err)
	}
	if err := s.core.RemoveObject(ctx, s.bucket, key, miniogo.RemoveObjectOptions{}); err != nil {
		if errCode(err) == miniogo.NoSuchKey {
			return nil
		}
		return fail(ctx, "delete", key, err)
	}
	return nil
}

// CreateMultipart implements intake.BlobStore.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := intake.ValidateBlobKey(key); err != nil {
		return "", fmt.Errorf("s3 create multipart: %w", err)
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, key, putOptions())
	if err != nil {
		return "", fail(ctx, "create multipart", key, err)
	}
	return id, nil
}

func checkUpload(key, uploadID string) error {
	if err := intake.ValidateBlobKey(key); err != nil {
		return err
	}
	if uploadID == "" {
		return errors.New("empty upload ID")
	}
	return nil
}

// PutPart implements intake.BlobStore. S3 needs the part's length up
// front, so size must be known.
func (s *Store) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (intake.Part, error) {
	if err := checkUpload(key, uploadID); err != nil {
		return intake.Part{}, fmt.Errorf("s3 put part: %w", err)
	}
	if n < 1 || n > 10000 {
		return intake.Part{}, fmt.Errorf("s3 put part %d of %q: part number outside 1..10000", n, key)
	}
	if size < 0 {
		return intake.Part{}, fmt.Errorf("s3 put part %d of %q: size must be known, got %d", n, key, size)
	}
	if size == 0 {
		if err := probeEOF(r); err != nil {
			return intake.Part{}, fmt.Errorf("s3 put part %d of %q: %w", n, key, err)
		}
	}
	// SSE-S3 was requested when the upload was created; S3 refuses the
	// header on single parts.
	p, err := s.core.PutObjectPart(ctx, s.bucket, key, uploadID, n, newExactReader(ctx, r, size), size, miniogo.PutObjectPartOptions{})
	if err != nil {
		return intake.Part{}, fail(ctx, fmt.Sprintf("put part %d of", n), key, err)
	}
	return intake.Part{Number: p.PartNumber, ETag: p.ETag, Size: p.Size}, nil
}

// CopyPart implements intake.PartCopier with UploadPartCopy: MinIO
// decrypts the source and encrypts the part under the upload's SSE-S3.
func (s *Store) CopyPart(ctx context.Context, key, uploadID string, n int, srcKey string, size int64) (intake.Part, error) {
	if err := checkUpload(key, uploadID); err != nil {
		return intake.Part{}, fmt.Errorf("s3 copy part: %w", err)
	}
	if err := intake.ValidateBlobKey(srcKey); err != nil {
		return intake.Part{}, fmt.Errorf("s3 copy part: %w", err)
	}
	if n < 1 || n > 10000 {
		return intake.Part{}, fmt.Errorf("s3 copy part %d of %q: part number outside 1..10000", n, key)
	}
	if size < 1 || size > intake.MaxCopyPartSize {
		return intake.Part{}, fmt.Errorf("s3 copy part %d of %q: size %d outside 1..%d", n, key, size, intake.MaxCopyPartSize)
	}
	// Exactly size bytes: a shorter source fails (invalid range).
	p, err := s.core.CopyObjectPart(ctx, s.bucket, srcKey, s.bucket, key, uploadID, n, 0, size, nil)
	if err != nil {
		return intake.Part{}, fail(ctx, fmt.Sprintf("copy part %d of", n), key, err)
	}
	return intake.Part{Number: p.PartNumber, ETag: strings.Trim(p.ETag, `"`), Size: size}, nil
}

// ListParts implements intake.BlobStore.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]intake.Part, error) {
	if err := checkUpload(key, uploadID); err != nil {
		return nil, fmt.Errorf("s3 list parts: %w", err)
	}
	parts := []intake.Part{}
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, key, uploadID, marker, 1000)
		if err != nil {
			return nil, fail(ctx, "list parts of", key, err)
		}
		for _, p := range res.ObjectParts {
			// Core's listing keeps the quotes that PutObjectPart strips.
			parts = append(parts, intake.Part{Number: p.PartNumber, ETag: strings.Trim(p.ETag, `"`), Size: p.Size})
		}
		if !res.IsTruncated {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// CompleteMultipart implements intake.BlobStore.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []intake.Part) (intake.BlobInfo, error) {
	if err := checkUpload(key, uploadID); err != nil {
		return intake.BlobInfo{}, fmt.Errorf("s3 complete multipart: %w", err)
	}
	if len(parts) == 0 {
		return intake.BlobInfo{}, fmt.Errorf("s3 complete multipart %q: no parts", key)
	}
	cp := make([]miniogo.CompletePart, len(parts))
	var size int64
	for i, p := range parts {
		cp[i] = miniogo.CompletePart{PartNumber: p.Number, ETag: p.ETag}
		size += p.Size
	}
	res, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, cp, miniogo.PutObjectOptions{})
	if err != nil {
		return intake.BlobInfo{}, fail(ctx, "complete multipart", key, err)
	}
	// The server joined exactly the listed parts (it checks their ETags), so
	// the size is their sum; a StatObject for it would cost a round trip per
	// file. The response has no date; the server's lies within this call.
	return intake.BlobInfo{Key: key, Size: size, ETag: res.ETag, Created: time.Now()}, nil
}

// AbortMultipart implements intake.BlobStore.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := checkUpload(key, uploadID); err != nil {
		return fmt.Errorf("s3 abort multipart: %w", err)
	}
	err := s.core.AbortMultipartUpload(ctx, s.bucket, key, uploadID)
	if err != nil && errCode(err) != miniogo.NoSuchUpload {
		return fail(ctx, "abort multipart", key, err)
	}
	return nil
}

// Ping implements intake.BlobStore: the bucket must exist and be reachable.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 ping bucket %q: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3 ping: bucket %q does not exist", s.bucket)
	}
	return nil
}
