package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Idempotent creation (draft-ietf-httpapi-idempotency-key-header): the
// client sends "Idempotency-Key" with a POST that creates an upload. When
// the connection drops after the server created the upload but before the
// client read the answer, the client sends the POST again with the same
// key and gets the same upload (201, its Location and current offset)
// instead of a second, empty one. Keys belong to the upload's owner
// (tenant and person): another person's identical key finds nothing.

// Bounds of an Idempotency-Key (a UUID has 36 characters).
const (
	minIdempotencyKey = 16
	maxIdempotencyKey = 64
)

// IdempotencyKeyTaken is returned by UploadStore.CreateUpload when the
// person already has an upload created with the same key.
type IdempotencyKeyTaken struct {
	Upload Upload
}

func (e *IdempotencyKeyTaken) Error() string {
	return "idempotency key already used for upload " + e.Upload.ID
}

var errKeyReused = problem(http.StatusUnprocessableEntity, "upload-schluessel-wiederverwendet", "Schlüssel bereits verwendet",
	"Der Idempotency-Key dieser Anfrage wurde bereits für eine andere Datei verwendet. Bitte wählen Sie die Datei erneut aus.")

func errKeyMalformed() *tusError {
	return errBadRequest("Die Kopfzeile „Idempotency-Key“ muss 16 bis 64 Zeichen aus Buchstaben, Ziffern, „-“ und „_“ enthalten, " +
		"wahlweise in Anführungszeichen.")
}

// parseIdempotencyKey accepts the draft's structured-field string
// ("\"…\"") and the bare token; "" when the header is absent.
func parseIdempotencyKey(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) < minIdempotencyKey || len(v) > maxIdempotencyKey {
		return "", errKeyMalformed()
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", errKeyMalformed()
		}
	}
	return v, nil
}

// creationDigest fingerprints what a creation declares: a repeated POST
// must declare the same file to get the upload of the first.
func creationDigest(r *TusRequest) string {
	h := sha256.New()
	for _, name := range []string{"Upload-Concat", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata"} {
		v := strings.TrimSpace(r.Header(name))
		h.Write([]byte(name + ":" + strconv.Itoa(len(v)) + ":" + v + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replay answers a creation whose key the person used before: the same
// declaration gets the earlier upload, another one 422. An upload that is
// gone (terminated, expired, …) or submitted gives its key up, so the
// client's new upload after a failed resume can use it; replay then
// returns nil.
func (h *TusHandler) replay(ctx context.Context, r *TusRequest, prev *Upload) (*TusResponse, error) {
	if prev == nil {
		p, err := h.cfg.Store.UploadByIdempotencyKey(ctx, r.Principal.TenantID, r.Principal.PersonID, r.idemKey)
		if errors.Is(err, ErrUploadNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		prev = &p
	}
	// The store scopes keys to the owner; checked again so a store bug
	// can never hand out another person's upload.
	if prev.TenantID != r.Principal.TenantID || prev.PersonID != r.Principal.PersonID {
		return nil, errors.New("upload by idempotency key of another owner")
	}
	// A submitted upload belongs to its Vorgang, not to a new draft.
	if h.usable(prev) != nil || prev.Status == StatusFinal {
		if err := h.cfg.Store.ReleaseIdempotencyKey(ctx, prev.ID, r.idemKey); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if prev.IdempotencyDigest != r.idemDigest {
		return nil, errKeyReused
	}
	h.cfg.Logger.InfoContext(ctx, "upload creation repeated with its idempotency key", "request_id", r.RequestID, "upload_id", prev.ID)
	resp := &TusResponse{Status: http.StatusCreated}
	resp.set("Location", h.location(prev.ID))
	if prev.Kind != KindFinal || prev.Status != StatusUploading {
		resp.set("Upload-Offset", strconv.FormatInt(prev.Offset, 10))
	}
	if prev.Status == StatusUploading {
		resp.set("Upload-Expires", prev.ExpiresAt.UTC().Format(http.TimeFormat))
	}
	return resp, nil
}

// replayTaken handles a CreateUpload that lost the race to an earlier
// creation with the same key: answered like a repeated request. ok is
// false for any other error.
func (h *TusHandler) replayTaken(ctx context.Context, r *TusRequest, err error) (*TusResponse, bool, error) {
	var taken *IdempotencyKeyTaken
	if !errors.As(err, &taken) {
		return nil, false, nil
	}
	resp, rerr := h.replay(ctx, r, &taken.Upload)
	if rerr == nil && resp == nil {
		// The earlier upload was gone and gave its key up; the client
		// retries and creates anew.
		rerr = h.errLocked()
	}
	return resp, true, rerr
}
