package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"postbox/audit"
	"postbox/auth"
)

// maintenanceBatch bounds the uploads one maintenance call handles; the
// next periodic call continues.
const maintenanceBatch = 200

// systemRequest is the "request" maintenance work acts in: audit events
// name the system as actor.
func systemRequest(u *Upload) *TusRequest {
	return &TusRequest{Principal: auth.Principal{TenantID: u.TenantID, AccountID: "system", Role: "system"}, Authenticated: true}
}

// CleanupExpired removes uploads whose expiry passed before they were
// submitted: it aborts the multipart upload, deletes staging segments and
// the object, and deletes the row. Uploads in use (locked) are left for the
// next run. The serve command calls it periodically; it is safe to run on
// every replica at once.
func (h *TusHandler) CleanupExpired(ctx context.Context) (int, error) {
	now := h.now()
	list, err := h.cfg.Store.ExpiredUploads(ctx, now, maintenanceBatch)
	if err != nil {
		return 0, fmt.Errorf("expired uploads: %w", err)
	}
	done := 0
	var errs []error
	for _, u := range list {
		owner := newID()
		locked, err := h.cfg.Store.LockUpload(ctx, u.TenantID, u.PersonID, u.ID, owner, now.Add(h.cfg.LockTTL), now)
		if errors.Is(err, ErrUploadLocked) || errors.Is(err, ErrUploadNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if locked.Status == StatusFinal {
			h.unlock(locked.ID, owner)
			continue
		}
		if err := h.dropBlobs(ctx, &locked); err != nil {
			h.unlock(locked.ID, owner)
			errs = append(errs, fmt.Errorf("upload %s: %w", locked.ID, err))
			continue
		}
		ev := h.event(systemRequest(&locked), "intake.upload.expired", &locked, audit.OutcomeSuccess,
			map[string]any{"status": string(locked.Status), "offset": locked.Offset})
		if err := h.cfg.Store.DeleteUpload(ctx, locked.ID, owner, ev); err != nil {
			h.unlock(locked.ID, owner)
			errs = append(errs, fmt.Errorf("upload %s: %w", locked.ID, err))
			continue
		}
		done++
	}
	if done > 0 {
		h.cfg.Logger.Info("expired uploads removed", "count", done)
	}
	return done, errors.Join(errs...)
}

func (h *TusHandler) unlock(id, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.cfg.Store.UnlockUpload(ctx, id, owner); err != nil {
		h.cfg.Logger.Warn("release upload lock", "upload_id", id, "err", err)
	}
}

// RecoverStalled finishes work a crashed or failed request left behind:
// uploads whose bytes were all stored but whose object was not assembled
// ("completing"), and quarantined uploads whose scan failed (scanner
// unreachable). The serve command calls it periodically.
func (h *TusHandler) RecoverStalled(ctx context.Context) (int, error) {
	now := h.now()
	list, err := h.cfg.Store.StalledUploads(ctx, now, maintenanceBatch)
	if err != nil {
		return 0, fmt.Errorf("stalled uploads: %w", err)
	}
	done := 0
	var errs []error
	for _, u := range list {
		owner := newID()
		locked, err := h.cfg.Store.LockUpload(ctx, u.TenantID, u.PersonID, u.ID, owner, now.Add(h.cfg.LockTTL), now)
		if errors.Is(err, ErrUploadLocked) || errors.Is(err, ErrUploadNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hctx, release := h.hold(ctx, locked.ID, owner)
		err = h.recover(hctx, &locked, owner)
		release()
		if err != nil && !errors.Is(err, errInfected) {
			errs = append(errs, fmt.Errorf("upload %s: %w", locked.ID, err))
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

func (h *TusHandler) recover(ctx context.Context, u *Upload, owner string) error {
	r := systemRequest(u)
	switch {
	case u.Status == StatusCompleting:
		s, err := h.settings(ctx, u.TenantID)
		if err != nil {
			return err
		}
		return h.complete(ctx, r, u, owner, s)
	case u.Status == StatusQuarantined && h.cfg.Scanner != nil:
		return h.scan(ctx, r, u, owner)
	case u.Status == StatusQuarantined:
		// The scanner was switched off since: release without a verdict,
		// marked as such, rather than keeping the file forever.
		u.Status, u.ScanStatus = StatusComplete, ScanNotScanned
		u.UpdatedAt = h.now()
		return h.cfg.Store.SaveUpload(ctx, *u, owner)
	}
	return nil
}
