package intake

import (
	"context"
	"errors"
	"fmt"
	"io"

	"postbox/audit"
	"postbox/auth"
)

// ErrVorgangNotFound: no such Vorgang in the actor's tenant (or the actor
// may not see Vorgänge); both answer the same.
var ErrVorgangNotFound = errors.New("vorgang not found")

// OpenVorgangFile opens a submitted file for a caseworker or team lead of
// the Vorgang's tenant and records the download. Another tenant's Vorgang
// or file, and any other role, get ErrFileNotFound — the same answer as for
// a file that does not exist. The caller streams and closes the reader.
func (s *PINService) OpenVorgangFile(ctx context.Context, a Actor, vorgangID, fileID string) (io.ReadCloser, SubmittedFile, error) {
	if !a.Has(auth.RoleCaseworker, auth.RoleTeamLead) || a.TenantID == "" {
		return nil, SubmittedFile{}, ErrFileNotFound
	}
	var file SubmittedFile
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		file = SubmittedFile{}
		files, err := tx.VorgangFiles(ctx, a.TenantID, vorgangID)
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.ID == fileID {
				file = f
			}
		}
		return nil
	})
	if err != nil {
		return nil, SubmittedFile{}, err
	}
	if file.ID == "" {
		s.recordDownload(ctx, a, vorgangID, fileID, audit.OutcomeDenied)
		return nil, SubmittedFile{}, ErrFileNotFound
	}
	rc, _, err := s.Blobs.Get(ctx, file.BlobKey)
	if err != nil {
		return nil, file, fmt.Errorf("open stored file: %w", err)
	}
	if err := s.recordDownload(ctx, a, vorgangID, fileID, audit.OutcomeSuccess); err != nil {
		rc.Close()
		return nil, file, err
	}
	return rc, file, nil
}

func (s *PINService) recordDownload(ctx context.Context, a Actor, vorgangID, fileID string, outcome audit.Outcome) error {
	return s.Store.InPINTx(ctx, func(tx PINTx) error {
		_, err := tx.RecordEvent(ctx, a.event("intake.file.downloaded", "attachment", fileID, outcome, map[string]any{"vorgang_id": vorgangID}))
		return err
	})
}
