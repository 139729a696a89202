package intake

import "context"

// UploadOwner returns the tenant and person an upload belongs to
// (ErrUploadNotFound for an unknown or malformed id). A request that
// carries two sessions (an account and an Einmal-PIN session in one
// browser) acts as the one that owns the upload; this tells which.
func (h *TusHandler) UploadOwner(ctx context.Context, id string) (tenantID, personID string, err error) {
	if !validID(id) {
		return "", "", ErrUploadNotFound
	}
	u, err := h.cfg.Store.UploadByID(ctx, id)
	if err != nil {
		return "", "", err
	}
	return u.TenantID, u.PersonID, nil
}
