package sqldb

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"postbox/audit"
	"postbox/intake"
)

var _ intake.UploadStore = (*Store)(nil)

const intakeUploadColumns = `id, tenant_id, person_id, kind, status, length, upload_offset, metadata, filename,
	declared_type, detected_type, concat, blob_key, multipart_id, parts, staging, staging_seq, hash_state,
	sha256, scan_status, scan_signature, lock_owner, lock_until, created_at, updated_at, completed_at, expires_at,
	idempotency_key, idempotency_digest`

func scanIntakeUpload(row interface{ Scan(...any) error }) (intake.Upload, error) {
	var (
		u                                      intake.Upload
		kind, status, scan                     string
		concat, parts, staging, hashState      string
		lockOwner                              sql.NullString
		lockUntil, created, updated, completed int64
		expires                                int64
	)
	err := row.Scan(&u.ID, &u.TenantID, &u.PersonID, &kind, &status, &u.Length, &u.Offset, &u.Metadata, &u.Filename,
		&u.DeclaredType, &u.DetectedType, &concat, &u.BlobKey, &u.MultipartID, &parts, &staging, &u.StagingSeq, &hashState,
		&u.SHA256, &scan, &u.ScanSignature, &lockOwner, &lockUntil, &created, &updated, &completed, &expires,
		&u.IdempotencyKey, &u.IdempotencyDigest)
	if err != nil {
		return u, err
	}
	u.Kind, u.Status, u.ScanStatus = intake.UploadKind(kind), intake.UploadStatus(status), intake.ScanStatus(scan)
	u.LockOwner, u.LockUntil = lockOwner.String, fromMicros(lockUntil)
	u.CreatedAt, u.UpdatedAt, u.CompletedAt, u.ExpiresAt = fromMicros(created), fromMicros(updated), fromMicros(completed), fromMicros(expires)
	if err := json.Unmarshal([]byte(concat), &u.Concat); err != nil {
		return u, fmt.Errorf("upload %s: concat: %w", u.ID, err)
	}
	if err := json.Unmarshal([]byte(parts), &u.Parts); err != nil {
		return u, fmt.Errorf("upload %s: parts: %w", u.ID, err)
	}
	if err := json.Unmarshal([]byte(staging), &u.Staging); err != nil {
		return u, fmt.Errorf("upload %s: staging: %w", u.ID, err)
	}
	if u.HashState, err = base64.StdEncoding.DecodeString(hashState); err != nil {
		return u, fmt.Errorf("upload %s: hash state: %w", u.ID, err)
	}
	return u, nil
}

// jsonList encodes a slice as JSON, nil as [].
func jsonList[T any](v []T) string {
	if v == nil {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs and strings always encode
	}
	return string(b)
}

// lockPerson serialises upload creation per person on PostgreSQL, so two
// concurrent creations cannot both pass the quota. SQLite transactions are
// serialised already (immediate locking).
func (t *Tx) lockPerson(ctx context.Context, tenantID, personID string) error {
	if t.s.dialect != Postgres {
		return nil
	}
	var id string
	err := t.queryRow(ctx, `SELECT id FROM persons WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, personID, tenantID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("person of upload: %w", intake.ErrUploadNotFound)
	}
	return err
}

// checkQuota counts the person's open uploads: complete but not submitted,
// and unfinished ones (with their declared length, or what arrived while
// the length is deferred).
func (t *Tx) checkQuota(ctx context.Context, u intake.Upload, q intake.UploadQuota, exclude []string) error {
	rows, err := t.query(ctx, `SELECT id, kind, length, upload_offset FROM uploads
		WHERE tenant_id = $1 AND person_id = $2 AND status IN ('uploading', 'completing', 'quarantined', 'complete')`,
		u.TenantID, u.PersonID)
	if err != nil {
		return fmt.Errorf("upload quota: %w", err)
	}
	defer rows.Close()
	var used, files int64
	for rows.Next() {
		var (
			id, kind       string
			length, offset int64
		)
		if err := rows.Scan(&id, &kind, &length, &offset); err != nil {
			return err
		}
		if slices.Contains(exclude, id) {
			continue
		}
		if length >= 0 {
			used += length
		} else {
			used += offset
		}
		if intake.UploadKind(kind) != intake.KindPartial {
			files++
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	requested := max(u.Length, u.Offset, 0)
	if q.MaxSubmissionBytes > 0 && used+requested > q.MaxSubmissionBytes {
		return &intake.QuotaError{Used: used, Limit: q.MaxSubmissionBytes, Requested: requested}
	}
	if u.Kind != intake.KindPartial && q.MaxFiles > 0 && files+1 > int64(q.MaxFiles) {
		return &intake.QuotaError{Files: true, Used: files, Limit: int64(q.MaxFiles), Requested: 1}
	}
	return nil
}

// CreateUpload implements intake.UploadStore.
func (s *Store) CreateUpload(ctx context.Context, u intake.Upload, q intake.UploadQuota, events ...audit.Event) error {
	return s.InTx(ctx, func(tx *Tx) error {
		if err := tx.lockPerson(ctx, u.TenantID, u.PersonID); err != nil {
			return err
		}
		if u.IdempotencyKey != "" {
			// Under the person's lock: of two creations with one key, the
			// second sees the first's row (the unique index is the backstop).
			prev, err := scanIntakeUpload(tx.queryRow(ctx, `SELECT `+intakeUploadColumns+` FROM uploads
				WHERE tenant_id = $1 AND person_id = $2 AND idempotency_key = $3`, u.TenantID, u.PersonID, u.IdempotencyKey))
			if err == nil {
				return &intake.IdempotencyKeyTaken{Upload: prev}
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("upload by idempotency key: %w", err)
			}
		}
		if err := tx.checkQuota(ctx, u, q, q.Exclude); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO uploads (id, tenant_id, person_id, kind, status, length, upload_offset, metadata, filename,
			declared_type, detected_type, concat, blob_key, multipart_id, parts, staging, staging_seq, hash_state,
			sha256, scan_status, scan_signature, lock_owner, lock_until, created_at, updated_at, completed_at, expires_at,
			idempotency_key, idempotency_digest)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)`,
			u.ID, u.TenantID, u.PersonID, string(u.Kind), string(u.Status), u.Length, u.Offset, u.Metadata, u.Filename,
			u.DeclaredType, u.DetectedType, jsonList(u.Concat), u.BlobKey, u.MultipartID, jsonList(u.Parts), jsonList(u.Staging),
			u.StagingSeq, base64.StdEncoding.EncodeToString(u.HashState), u.SHA256, string(u.ScanStatus), u.ScanSignature,
			nullString(u.LockOwner), micros(u.LockUntil), micros(u.CreatedAt), micros(u.UpdatedAt), micros(u.CompletedAt), micros(u.ExpiresAt),
			u.IdempotencyKey, u.IdempotencyDigest)
		if err != nil {
			return fmt.Errorf("insert upload: %w", err)
		}
		return tx.recordAll(ctx, events)
	})
}

func (t *Tx) recordAll(ctx context.Context, events []audit.Event) error {
	for _, e := range events {
		if _, err := t.RecordEvent(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// UploadByID implements intake.UploadStore.
func (s *Store) UploadByID(ctx context.Context, id string) (intake.Upload, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	u, err := scanIntakeUpload(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+intakeUploadColumns+` FROM uploads WHERE id = $1`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, intake.ErrUploadNotFound
	}
	if err != nil {
		return u, fmt.Errorf("upload %s: %w", id, err)
	}
	return u, nil
}

// LockUpload implements intake.UploadStore: a conditional UPDATE takes
// the lease only when it is free or expired, so of two racing requests
// exactly one wins, on any number of replicas.
func (s *Store) LockUpload(ctx context.Context, tenantID, personID, id, owner string, until, now time.Time) (intake.Upload, error) {
	// One statement, no transaction: it runs on every PATCH.
	ctx, cancel := bounded(ctx)
	defer cancel()
	u, err := scanIntakeUpload(s.db.QueryRowContext(ctx, s.rebind(`UPDATE uploads SET lock_owner = $1, lock_until = $2
		WHERE id = $3 AND tenant_id = $4 AND person_id = $5 AND (lock_owner IS NULL OR lock_until < $6)
		RETURNING `+intakeUploadColumns), owner, micros(until), id, tenantID, personID, micros(now)))
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("lock upload: %w", err)
	}
	var one int
	err = s.db.QueryRowContext(ctx, s.rebind(`SELECT 1 FROM uploads WHERE id = $1 AND tenant_id = $2 AND person_id = $3`), id, tenantID, personID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return intake.Upload{}, intake.ErrUploadNotFound
	}
	if err != nil {
		return intake.Upload{}, fmt.Errorf("lock upload: %w", err)
	}
	return intake.Upload{}, intake.ErrUploadLocked
}

// RenewUploadLock implements intake.UploadStore.
func (s *Store) RenewUploadLock(ctx context.Context, id, owner string, until time.Time) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, s.rebind(`UPDATE uploads SET lock_until = $1 WHERE id = $2 AND lock_owner = $3`), micros(until), id, owner)
	if err != nil {
		return fmt.Errorf("renew upload lock: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return intake.ErrLockLost
	}
	return nil
}

// UnlockUpload implements intake.UploadStore.
func (s *Store) UnlockUpload(ctx context.Context, id, owner string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := s.db.ExecContext(ctx, s.rebind(`UPDATE uploads SET lock_owner = NULL, lock_until = 0 WHERE id = $1 AND lock_owner = $2`), id, owner)
	if err != nil {
		return fmt.Errorf("unlock upload: %w", err)
	}
	return nil
}

// SaveUpload implements intake.UploadStore. The WHERE on lock_owner is the
// fence: a writer whose lease was taken over changes nothing.
func (s *Store) SaveUpload(ctx context.Context, u intake.Upload, owner string, events ...audit.Event) error {
	return s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE uploads SET status = $1, length = $2, upload_offset = $3, detected_type = $4,
			multipart_id = $5, parts = $6, staging = $7, staging_seq = $8, hash_state = $9, sha256 = $10, scan_status = $11,
			scan_signature = $12, updated_at = $13, completed_at = $14, expires_at = $15
			WHERE id = $16 AND lock_owner = $17`,
			string(u.Status), u.Length, u.Offset, u.DetectedType, u.MultipartID, jsonList(u.Parts), jsonList(u.Staging),
			u.StagingSeq, base64.StdEncoding.EncodeToString(u.HashState), u.SHA256, string(u.ScanStatus), u.ScanSignature,
			micros(u.UpdatedAt), micros(u.CompletedAt), micros(u.ExpiresAt), u.ID, owner)
		if err != nil {
			return fmt.Errorf("save upload: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return intake.ErrLockLost
		}
		return tx.recordAll(ctx, events)
	})
}

// SetUploadLength implements intake.UploadStore.
func (s *Store) SetUploadLength(ctx context.Context, u intake.Upload, owner string, q intake.UploadQuota) error {
	return s.InTx(ctx, func(tx *Tx) error {
		if err := tx.lockPerson(ctx, u.TenantID, u.PersonID); err != nil {
			return err
		}
		if err := tx.checkQuota(ctx, u, q, append(slices.Clone(q.Exclude), u.ID)); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `UPDATE uploads SET length = $1 WHERE id = $2 AND lock_owner = $3 AND length < 0`, u.Length, u.ID, owner)
		if err != nil {
			return fmt.Errorf("set upload length: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return intake.ErrLockLost
		}
		return nil
	})
}

// RecordUploadEvent implements intake.UploadStore.
func (s *Store) RecordUploadEvent(ctx context.Context, e audit.Event) error {
	return s.InTx(ctx, func(tx *Tx) error {
		_, err := tx.RecordEvent(ctx, e)
		return err
	})
}

func (s *Store) queryUploads(ctx context.Context, q string, args ...any) ([]intake.Upload, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanIntakeUpload)
}

// UploadsOfPerson implements intake.UploadStore: the person's files with
// their status (uploading, quarantined, complete, infected, rejected,
// final), newest first.
func (s *Store) UploadsOfPerson(ctx context.Context, tenantID, personID string) ([]intake.Upload, error) {
	out, err := s.queryUploads(ctx, `SELECT `+intakeUploadColumns+` FROM uploads
		WHERE tenant_id = $1 AND person_id = $2 AND kind <> 'partial' AND status NOT IN ('terminated', 'consumed')
		ORDER BY created_at DESC, id`, tenantID, personID)
	if err != nil {
		return nil, fmt.Errorf("uploads of person: %w", err)
	}
	return out, nil
}

// UploadsOfPerson is UploadsOfPerson inside a transaction, for the
// submission, which reads the uploads and marks them final in one go.
func (t *Tx) UploadsOfPerson(ctx context.Context, tenantID, personID string) ([]intake.Upload, error) {
	rows, err := t.query(ctx, `SELECT `+intakeUploadColumns+` FROM uploads
		WHERE tenant_id = $1 AND person_id = $2 AND kind <> 'partial' AND status NOT IN ('terminated', 'consumed')
		ORDER BY created_at DESC, id`, tenantID, personID)
	if err != nil {
		return nil, fmt.Errorf("uploads of person: %w", err)
	}
	return collect(rows, scanIntakeUpload)
}

// ExpiredUploads implements intake.UploadStore.
func (s *Store) ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]intake.Upload, error) {
	out, err := s.queryUploads(ctx, `SELECT `+intakeUploadColumns+` FROM uploads
		WHERE expires_at < $1 AND status <> 'final' ORDER BY expires_at LIMIT $2`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("expired uploads: %w", err)
	}
	return out, nil
}

// StalledUploads implements intake.UploadStore.
func (s *Store) StalledUploads(ctx context.Context, now time.Time, limit int) ([]intake.Upload, error) {
	out, err := s.queryUploads(ctx, `SELECT `+intakeUploadColumns+` FROM uploads
		WHERE status IN ('completing', 'quarantined') AND (lock_owner IS NULL OR lock_until < $1)
		ORDER BY updated_at LIMIT $2`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("stalled uploads: %w", err)
	}
	return out, nil
}

// DeleteUpload implements intake.UploadStore.
func (s *Store) DeleteUpload(ctx context.Context, id, owner string, events ...audit.Event) error {
	return s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `DELETE FROM uploads WHERE id = $1 AND lock_owner = $2`, id, owner)
		if err != nil {
			return fmt.Errorf("delete upload: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return intake.ErrLockLost
		}
		return tx.recordAll(ctx, events)
	})
}

// MarkUploadsFinal hands the person's completed uploads over to a
// submission in this transaction: each must belong to the tenant and
// person (else intake.ErrUploadNotFound), be complete and clean or not
// scanned, not expired and not in use by a request (else
// intake.ErrUploadNotReady, or intake.ErrUploadAlreadyFinal when it was
// submitted before). On success the uploads are "final": they never expire
// and cannot be deleted by the person. It returns them with blob key, size
// and SHA-256.
func (t *Tx) MarkUploadsFinal(ctx context.Context, tenantID, personID string, uploadIDs []string) ([]intake.Upload, error) {
	lock := ""
	if t.s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	now := t.Now()
	out := make([]intake.Upload, 0, len(uploadIDs))
	seen := map[string]bool{}
	for _, id := range uploadIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		u, err := scanIntakeUpload(t.queryRow(ctx, `SELECT `+intakeUploadColumns+` FROM uploads WHERE id = $1 AND tenant_id = $2 AND person_id = $3`+lock,
			id, tenantID, personID))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("upload %s: %w", id, intake.ErrUploadNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("upload %s: %w", id, err)
		}
		switch {
		case u.Status == intake.StatusFinal:
			return nil, fmt.Errorf("upload %s: %w", id, intake.ErrUploadAlreadyFinal)
		case u.Kind == intake.KindPartial || u.Status != intake.StatusComplete:
			return nil, fmt.Errorf("upload %s is %s: %w", id, u.Status, intake.ErrUploadNotReady)
		case !u.ExpiresAt.IsZero() && now.After(u.ExpiresAt):
			return nil, fmt.Errorf("upload %s expired: %w", id, intake.ErrUploadNotReady)
		}
		// A request holding the lease (e.g. a DELETE) must finish first.
		res, err := t.exec(ctx, `UPDATE uploads SET status = 'final', finalized_at = $1, updated_at = $1
			WHERE id = $2 AND status = 'complete' AND (lock_owner IS NULL OR lock_until < $1)`, micros(now), id)
		if err != nil {
			return nil, fmt.Errorf("mark upload %s final: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("upload %s is in use: %w", id, intake.ErrUploadNotReady)
		}
		u.Status = intake.StatusFinal
		u.UpdatedAt = now
		out = append(out, u)
	}
	return out, nil
}

// UploadByIdempotencyKey implements intake.UploadStore.
func (s *Store) UploadByIdempotencyKey(ctx context.Context, tenantID, personID, key string) (intake.Upload, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	u, err := scanIntakeUpload(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+intakeUploadColumns+` FROM uploads
		WHERE tenant_id = $1 AND person_id = $2 AND idempotency_key = $3`), tenantID, personID, key))
	if errors.Is(err, sql.ErrNoRows) || key == "" {
		return intake.Upload{}, intake.ErrUploadNotFound
	}
	if err != nil {
		return u, fmt.Errorf("upload by idempotency key: %w", err)
	}
	return u, nil
}

// ReleaseIdempotencyKey implements intake.UploadStore.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, id, key string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.rebind(`UPDATE uploads SET idempotency_key = '', idempotency_digest = ''
		WHERE id = $1 AND idempotency_key = $2`), id, key); err != nil {
		return fmt.Errorf("release idempotency key of upload %s: %w", id, err)
	}
	return nil
}
