package mailbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"postbox/audit"
)

// RetentionReport says what one retention run removed.
type RetentionReport struct {
	Messages    int
	Attachments int
	Threads     int
	Uploads     int // uploads never attached to a sent message
	Blobs       int // objects deleted from the blob store
	MailJobs    int // notification jobs past their keeping time
}

// Notification jobs hold a recipient address; they are kept only as long
// as they are useful: sent ones for the coalescing window and a support
// question (30 days), failed ones for caseworkers to follow up (1 year).
const (
	keepSentMails   = 30 * 24 * time.Hour
	keepFailedMails = 365 * 24 * time.Hour
)

// retentionBatch is how many messages one transaction deletes.
const retentionBatch = 200

// RunRetention deletes, for every Kasse, the messages older than its
// MessageRetention with their attachments (rows and blobs), except in
// threads under legal hold. Each deletion writes an audit event in the
// transaction that deletes. Blobs are removed after the commit from a trash
// table, so a failure there is retried by the next run and a rolled-back
// deletion never loses a blob. The serve command calls this daily.
func (s *Service) RunRetention(ctx context.Context) (RetentionReport, error) {
	var rep RetentionReport
	kassen, err := s.Store.Kassen(ctx)
	if err != nil {
		return rep, err
	}
	for _, k := range kassen {
		cutoff := s.now().Add(-k.Settings.MessageRetention)
		for {
			ids, err := s.Store.ExpiredMessages(ctx, k.ID, cutoff, retentionBatch)
			if err != nil {
				return rep, err
			}
			if len(ids) == 0 {
				break
			}
			var step RetentionReport
			err = s.Store.InTx(ctx, func(tx Tx) error {
				step = RetentionReport{}
				for _, id := range ids {
					d, err := tx.DeleteMessage(ctx, k.ID, id)
					if errors.Is(err, ErrLegalHold) || errors.Is(err, ErrNotFound) {
						continue // hold set (or gone) since the listing
					}
					if err != nil {
						return err
					}
					if err := recordDeletion(ctx, tx, k.ID, d, k.Settings.MessageRetention); err != nil {
						return err
					}
					step.Messages++
					step.Attachments += len(d.Attachments)
					if d.ThreadDeleted {
						step.Threads++
					}
				}
				return nil
			})
			if err != nil {
				return rep, fmt.Errorf("retention of %s: %w", k.ID, err)
			}
			rep.Messages += step.Messages
			rep.Attachments += step.Attachments
			rep.Threads += step.Threads
			if step.Messages == 0 {
				break // everything left is under hold
			}
		}
	}
	n, err := s.dropStaleUploads(ctx)
	rep.Uploads = n
	if err != nil {
		return rep, err
	}
	now := s.now()
	if rep.MailJobs, err = s.Store.PurgeMailJobs(ctx, now.Add(-keepSentMails), now.Add(-keepFailedMails)); err != nil {
		return rep, err
	}
	rep.Blobs, err = s.EmptyTrash(ctx)
	return rep, err
}

func recordDeletion(ctx context.Context, tx Tx, tenantID string, d DeletedMessage, retention time.Duration) error {
	sys := func(typ, subjectType, id, details string) error {
		_, err := tx.RecordEvent(ctx, audit.Event{
			TenantID: tenantID, ActorID: "retention", ActorRole: "system", Type: typ,
			SubjectType: subjectType, SubjectID: id, Details: details,
		})
		return err
	}
	days := int(retention / (24 * time.Hour))
	for _, a := range d.Attachments {
		if err := sys("mailbox.attachment.deleted", "attachment", a, fmt.Sprintf(`{"reason":"retention","message":%q}`, d.MessageID)); err != nil {
			return err
		}
	}
	if err := sys("mailbox.message.deleted", "message", d.MessageID,
		fmt.Sprintf(`{"reason":"retention","retention_days":%d,"thread":%q,"attachments":%d}`, days, d.ThreadID, len(d.Attachments))); err != nil {
		return err
	}
	if d.ThreadDeleted {
		return sys("mailbox.thread.deleted", "thread", d.ThreadID, `{"reason":"retention"}`)
	}
	return nil
}

func (s *Service) dropStaleUploads(ctx context.Context) (int, error) {
	total := 0
	for {
		ups, err := s.Store.StaleUploads(ctx, s.now().Add(-s.uploadTTL()), retentionBatch)
		if err != nil || len(ups) == 0 {
			return total, err
		}
		err = s.Store.InTx(ctx, func(tx Tx) error {
			for _, u := range ups {
				if err := tx.DeleteUpload(ctx, u.TenantID, u.ID); err != nil {
					return err
				}
				if err := tx.TrashBlob(ctx, u.TenantID, u.BlobKey); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(ups)
	}
}

// EmptyTrash deletes the blobs whose rows are gone and reports how many.
func (s *Service) EmptyTrash(ctx context.Context) (int, error) {
	n := 0
	for {
		keys, err := s.Store.TrashedBlobs(ctx, 500)
		if err != nil || len(keys) == 0 {
			return n, err
		}
		for _, key := range keys {
			if err := s.Blobs.Delete(ctx, key); err != nil {
				return n, fmt.Errorf("delete blob: %w", err)
			}
			if err := s.Store.ForgetTrashedBlob(ctx, key); err != nil {
				return n, err
			}
			n++
		}
	}
}
