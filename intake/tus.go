package intake

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
)

// TusVersion is the only protocol version served.
const TusVersion = "1.0.0"

// TusExtensions are the tus extensions the handler implements.
const TusExtensions = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation"

// TusChecksumAlgorithms are the Upload-Checksum algorithms accepted.
const TusChecksumAlgorithms = "sha1,sha256"

// offsetOctetStream is the only media type of PATCH bodies.
const offsetOctetStream = "application/offset+octet-stream"

// Defaults of TusConfig.
const (
	DefaultPartSize    = 32 << 20
	DefaultLockTTL     = 20 * time.Second
	DefaultScanTimeout = 10 * time.Minute
	// maxStagingSegments bounds how many small staging blobs an upload
	// collects before they are merged into one (a client sending tiny
	// chunks would otherwise create thousands of objects).
	maxStagingSegments = 8
)

// TusConfig wires the tus handler.
type TusConfig struct {
	Store   UploadStore
	Blobs   BlobStore
	Scanner Scanner // nil: completed uploads are released as ScanNotScanned
	// BasePath is the URL path of the upload collection, ending in "/";
	// Location headers are BasePath + id.
	BasePath string
	// PartSize is the size of the multipart parts written for large
	// chunks (at least MinPartSize). Larger parts mean fewer requests to
	// the store; a broken connection loses at most the part in flight.
	PartSize int64
	// LockTTL is how long a request holds an upload without renewing the
	// lease; a crashed replica's lock frees itself after this time.
	LockTTL time.Duration
	// Lifetime of an unfinished upload after its last change; 0 uses the
	// tenant's Einmal-PIN lifetime, so an upload stays resumable as long as
	// a PIN of its letter can be valid.
	Lifetime    time.Duration
	ScanTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
	// Unavailable reports whether an error means the database or the blob
	// store cannot be reached right now: answered 503 with Retry-After
	// (clients resume later) instead of 500. nil: never.
	Unavailable func(error) bool
	// Space is asked before an upload is created and before a chunk is
	// written, with the chunk's length (0 if unknown); it returns
	// ErrInsufficientStorage when the local volume would fall below its
	// reserve. nil: no check (blobs and database are remote).
	Space func(need int64) error
	// Full reports whether a write failed because the volume is full
	// (ENOSPC, SQLite's "database or disk is full"). Such errors and
	// ErrInsufficientStorage answer 507; what was written of the piece in
	// flight is dropped and the offset stays where it was. nil: ENOSPC only.
	Full func(error) bool
}

// ErrInsufficientStorage is returned by TusConfig.Space when the volume has
// no room left for the request.
var ErrInsufficientStorage = errors.New("insufficient storage")

// TusHandler speaks tus 1.0.0 over any HTTP framework: the web layer turns
// a request into a TusRequest and writes the TusResponse.
type TusHandler struct {
	cfg TusConfig
}

// NewTusHandler fills in defaults.
func NewTusHandler(cfg TusConfig) *TusHandler {
	if cfg.PartSize < MinPartSize {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.ScanTimeout <= 0 {
		cfg.ScanTimeout = DefaultScanTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().UTC() }
	}
	if cfg.BasePath == "" {
		cfg.BasePath = "/api/uploads/"
	}
	return &TusHandler{cfg: cfg}
}

// TusRequest is one HTTP request to the upload endpoint.
type TusRequest struct {
	Method        string // after X-HTTP-Method-Override
	ID            string // upload id from the path; "" for the collection
	Header        func(name string) string
	Body          io.Reader // streamed, never buffered whole
	ContentLength int64     // -1 when unknown (chunked)
	Principal     auth.Principal
	Authenticated bool
	ClientHash    string // keyed hash of the client address, for audit events
	RequestID     string

	// Set by create from Idempotency-Key (see tus_idempotency.go).
	idemKey, idemDigest string
}

// Problem is an error answer; Detail is German, shown to the user.
type Problem struct {
	Type   string
	Title  string
	Detail string
}

// TusResponse is what to send back.
type TusResponse struct {
	Status  int
	Header  [][2]string
	Problem *Problem // nil: no body
}

func (r *TusResponse) set(name, value string) { r.Header = append(r.Header, [2]string{name, value}) }

// tusError is an answer other than success, with the cause for the log.
type tusError struct {
	status int
	p      Problem
	header [][2]string
}

func (e *tusError) Error() string { return fmt.Sprintf("tus %d %s", e.status, e.p.Type) }

func problem(status int, typ, title, detail string) *tusError {
	return &tusError{status: status, p: Problem{Type: typ, Title: title, Detail: detail}}
}

var (
	errNotFound = problem(http.StatusNotFound, "upload-nicht-gefunden", "Upload nicht gefunden",
		"Dieser Upload existiert nicht. Bitte laden Sie die Datei erneut hoch.")
	errMediaType = problem(http.StatusUnsupportedMediaType, "upload-inhaltstyp", "Falscher Inhaltstyp",
		"Upload-Daten müssen mit dem Inhaltstyp „application/offset+octet-stream“ gesendet werden.")
	errChecksum = problem(460, "upload-pruefsumme", "Prüfsumme stimmt nicht",
		"Die Prüfsumme des gesendeten Abschnitts stimmt nicht. Der Abschnitt wurde verworfen; bitte senden Sie ihn erneut.")
	errInfected = problem(http.StatusUnprocessableEntity, "upload-schadsoftware", "Schadsoftware gefunden",
		"Die Datei enthält Schadsoftware und wurde verworfen.")
	errFinalPatch = problem(http.StatusForbidden, "upload-zusammengesetzt", "Upload nicht änderbar",
		"Eine aus Teilen zusammengesetzte Datei kann nicht mehr verändert werden.")
	errEmpty      = problem(http.StatusBadRequest, "upload-leer", "Leere Datei", "Die Datei ist leer.")
	errOverLength = problem(http.StatusRequestEntityTooLarge, "upload-zu-gross", "Datei zu groß",
		"Es wurden mehr Daten gesendet, als für diese Datei angekündigt waren.")
	errClientGone = errors.New("client closed the request body")
)

func errBadRequest(detail string) *tusError {
	return problem(http.StatusBadRequest, "upload-ungueltige-anfrage", "Ungültige Anfrage", detail)
}

func errOffset(server, client int64) *tusError {
	return problem(http.StatusConflict, "upload-position", "Upload-Position stimmt nicht", fmt.Sprintf(
		"Der Upload sollte bei Byte %d fortgesetzt werden, die Anfrage beginnt bei Byte %d. Bitte setzen Sie den Upload erneut fort.", server, client))
}

func (h *TusHandler) errLocked() *tusError {
	e := problem(http.StatusLocked, "upload-gesperrt", "Upload gerade in Bearbeitung",
		"Dieser Upload wird gerade von einer anderen Anfrage fortgesetzt. Bitte warten Sie einen Moment und versuchen Sie es dann erneut.")
	e.header = [][2]string{{"Retry-After", strconv.Itoa(int(h.cfg.LockTTL.Seconds()) + 1)}}
	return e
}

func errFileTooLarge(limit int64) *tusError {
	return problem(http.StatusRequestEntityTooLarge, "upload-zu-gross", "Datei zu groß",
		fmt.Sprintf("Die Datei ist größer als die erlaubten %s.", FormatBytes(limit)))
}

func errQuota(q *QuotaError) *tusError {
	if q.Files {
		return problem(http.StatusRequestEntityTooLarge, "upload-zu-viele-dateien", "Zu viele Dateien", fmt.Sprintf(
			"Sie können höchstens %d Dateien hochladen. Entfernen Sie eine Datei, bevor Sie eine weitere hinzufügen.", q.Limit))
	}
	return problem(http.StatusRequestEntityTooLarge, "upload-gesamtgroesse", "Dateien zusammen zu groß", fmt.Sprintf(
		"Alle Dateien zusammen dürfen höchstens %s groß sein; Ihre bisherigen Dateien belegen bereits %s.",
		FormatBytes(q.Limit), FormatBytes(q.Used)))
}

func errFileType(ce *ContentError) *tusError {
	return problem(http.StatusUnsupportedMediaType, "upload-dateityp", "Dateityp nicht erlaubt", ce.Detail)
}

func errGone(u *Upload) *tusError {
	detail := "Dieser Upload ist abgelaufen. Bitte laden Sie die Datei erneut hoch."
	switch u.Status {
	case StatusInfected:
		return problem(http.StatusGone, "upload-schadsoftware", "Schadsoftware gefunden", "Die Datei enthält Schadsoftware und wurde verworfen.")
	case StatusTerminated:
		detail = "Dieser Upload wurde abgebrochen und gelöscht."
	case StatusRejected:
		detail = "Dieser Upload wurde wegen eines nicht erlaubten Dateityps verworfen."
	case StatusConsumed:
		detail = "Dieser Teil-Upload wurde bereits zu einer Datei zusammengesetzt."
	}
	return problem(http.StatusGone, "upload-nicht-mehr-verfuegbar", "Upload nicht mehr verfügbar", detail)
}

// FormatBytes writes a size the German way: "2 GB", "1,5 MB", "512 Bytes"
// (binary units, as the limits are set).
func FormatBytes(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 30, "GB"}, {1 << 20, "MB"}, {1 << 10, "KB"}}
	for _, u := range units {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return strings.Replace(fmt.Sprintf("%.1f %s", float64(n)/float64(u.size), u.name), ".", ",", 1)
		}
	}
	return fmt.Sprintf("%d Bytes", n)
}

// Serve answers one request. It never panics on client input and never
// returns an internal error text: failures become a problem with the
// request id.
func (h *TusHandler) Serve(ctx context.Context, r *TusRequest) *TusResponse {
	if r.Method == http.MethodOptions {
		return h.options(ctx, r)
	}
	resp, err := h.serve(ctx, r)
	if err == nil {
		resp.set("Tus-Resumable", TusVersion)
		return resp
	}
	out := &TusResponse{}
	out.set("Tus-Resumable", TusVersion)
	var te *tusError
	if errors.As(err, &te) {
		out.Status = te.status
		out.Header = append(out.Header, te.header...)
		p := te.p
		out.Problem = &p
		return out
	}
	if errors.Is(err, errClientGone) {
		// Nobody reads this; what was stored is kept and counted.
		out.Status = http.StatusBadRequest
		out.Problem = &Problem{Type: "upload-abgebrochen", Title: "Übertragung abgebrochen", Detail: "Die Übertragung wurde unterbrochen. Bitte setzen Sie den Upload fort."}
		return out
	}
	if errors.Is(err, ErrInsufficientStorage) || errors.Is(err, syscall.ENOSPC) || (h.cfg.Full != nil && h.cfg.Full(err)) {
		h.cfg.Logger.WarnContext(ctx, "upload refused: storage full", "request_id", r.RequestID, "method", r.Method, "upload_id", r.ID, "err", err)
		out.Status = http.StatusInsufficientStorage
		out.Problem = &Problem{Type: "speicher-voll", Title: "Speicher voll", Detail: "Der Speicher des Dienstes ist fast voll, deshalb kann Ihre Datei gerade nicht angenommen werden. " +
			"Bereits vollständig übertragene Teile bleiben erhalten; bitte setzen Sie den Upload später fort. Vorgangsnummer: " + r.RequestID}
		return out
	}
	if h.cfg.Unavailable != nil && h.cfg.Unavailable(err) {
		h.cfg.Logger.WarnContext(ctx, "upload request failed: storage unavailable", "request_id", r.RequestID, "method", r.Method, "upload_id", r.ID, "err", err)
		out.Status = http.StatusServiceUnavailable
		out.set("Retry-After", "5")
		out.Problem = &Problem{Type: "speicher-nicht-verfuegbar", Title: "Speicher vorübergehend nicht erreichbar", Detail: "Ihre Datei kann gerade nicht gespeichert werden. " +
			"Bereits übertragene Teile bleiben erhalten; bitte setzen Sie den Upload in einigen Sekunden fort. Vorgangsnummer: " + r.RequestID}
		return out
	}
	h.cfg.Logger.ErrorContext(ctx, "upload request failed", "request_id", r.RequestID, "method", r.Method, "upload_id", r.ID, "err", err)
	out.Status = http.StatusInternalServerError
	out.Problem = &Problem{Type: "interner-fehler", Title: "Interner Fehler", Detail: "Beim Speichern ist ein Fehler aufgetreten. " +
		"Bitte setzen Sie den Upload später fort; bereits übertragene Teile bleiben erhalten. Vorgangsnummer: " + r.RequestID}
	return out
}

func (h *TusHandler) serve(ctx context.Context, r *TusRequest) (*TusResponse, error) {
	if v := r.Header("Tus-Resumable"); v != TusVersion {
		e := problem(http.StatusPreconditionFailed, "upload-protokollversion", "Protokollversion nicht unterstützt",
			"Ihr Upload-Programm verwendet eine Protokollversion, die der Server nicht unterstützt (erwartet: tus 1.0.0).")
		e.header = [][2]string{{"Tus-Version", TusVersion}}
		return nil, e
	}
	if !r.Authenticated || r.Principal.TenantID == "" {
		return nil, problem(http.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
			"Bitte melden Sie sich mit Ihrer Krankenversichertennummer und Ihrer Einmal-PIN an, um Dokumente hochzuladen.")
	}
	if r.Principal.PersonID == "" {
		return nil, problem(http.StatusForbidden, "keine-berechtigung", "Keine Berechtigung",
			"Dokumente können hier nur Versicherte hochladen.")
	}
	switch {
	case r.Method == http.MethodPost && r.ID == "":
		return h.create(ctx, r)
	case r.ID == "":
		return nil, problem(http.StatusMethodNotAllowed, "methode-nicht-erlaubt", "Methode nicht erlaubt", "")
	case r.Method == http.MethodHead:
		return h.head(ctx, r)
	case r.Method == http.MethodPatch:
		return h.patch(ctx, r)
	case r.Method == http.MethodDelete:
		return h.terminate(ctx, r)
	}
	return nil, problem(http.StatusMethodNotAllowed, "methode-nicht-erlaubt", "Methode nicht erlaubt", "")
}

func (h *TusHandler) options(ctx context.Context, r *TusRequest) *TusResponse {
	resp := &TusResponse{Status: http.StatusNoContent}
	resp.set("Tus-Resumable", TusVersion)
	resp.set("Tus-Version", TusVersion)
	resp.set("Tus-Extension", TusExtensions)
	resp.set("Tus-Checksum-Algorithm", TusChecksumAlgorithms)
	if r.Authenticated && r.Principal.TenantID != "" {
		if k, err := h.cfg.Store.Kasse(ctx, r.Principal.TenantID); err == nil {
			resp.set("Tus-Max-Size", strconv.FormatInt(k.Settings.MaxFileBytes, 10))
		}
	}
	return resp
}

func (h *TusHandler) now() time.Time { return h.cfg.Now() }

func (h *TusHandler) lifetime(s kasse.Settings) time.Duration {
	if h.cfg.Lifetime > 0 {
		return h.cfg.Lifetime
	}
	return s.PINLifetime
}

// newID returns 128 random bits in hex: upload URLs cannot be guessed.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	return len(id) == 32 && strings.Trim(id, "0123456789abcdef") == ""
}

// BlobKey is where an upload's object lives.
func BlobKey(tenantID, id string) string { return "intake/" + tenantID + "/" + id + "/file" }

func (h *TusHandler) event(r *TusRequest, typ string, u *Upload, outcome audit.Outcome, details map[string]any) audit.Event {
	d := "{}"
	if len(details) > 0 {
		if b, err := json.Marshal(details); err == nil {
			d = string(b)
		}
	}
	actor, role := r.Principal.AccountID, string(r.Principal.Role)
	if actor == "" {
		actor = "person:" + r.Principal.PersonID
	}
	return audit.Event{
		TenantID: r.Principal.TenantID, ActorID: actor, ActorRole: role, Type: typ,
		SubjectType: "upload", SubjectID: u.ID, Outcome: outcome, ClientHash: r.ClientHash, RequestID: r.RequestID, Details: d,
	}
}

// load returns the caller's upload. Unknown and foreign uploads look the
// same (404); a foreign attempt is audited.
func (h *TusHandler) load(ctx context.Context, r *TusRequest) (*Upload, error) {
	if !validID(r.ID) {
		return nil, errNotFound
	}
	u, err := h.cfg.Store.UploadByID(ctx, r.ID)
	if errors.Is(err, ErrUploadNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	if u.TenantID != r.Principal.TenantID || u.PersonID != r.Principal.PersonID {
		ev := h.event(r, "intake.upload.access_denied", &u, audit.OutcomeDenied, nil)
		if err := h.cfg.Store.RecordUploadEvent(ctx, ev); err != nil {
			return nil, err
		}
		return nil, errNotFound
	}
	if err := h.usable(&u); err != nil {
		return nil, err
	}
	return &u, nil
}

// usable refuses uploads that are gone: terminated, rejected, infected,
// consumed, or expired before they were submitted.
func (h *TusHandler) usable(u *Upload) error {
	if u.Status.Gone() {
		return errGone(u)
	}
	if u.Status != StatusFinal && !u.ExpiresAt.IsZero() && h.now().After(u.ExpiresAt) {
		return errGone(u)
	}
	return nil
}

// cleanType keeps a declared MIME type printable and short; it is only
// compared and quoted in messages.
func cleanType(t string) string {
	t = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return -1
		}
		return r
	}, strings.TrimSpace(t))
	if len(t) > 100 {
		t = t[:100]
	}
	return t
}

func parseSize(v string) (int64, bool) {
	if v == "" || len(v) > 19 || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// ParseMetadata decodes Upload-Metadata: comma-separated "key base64value"
// pairs, the value optional, keys unique. Only printable ASCII and spaces
// may appear: the header is stored as sent and echoed by HEAD, where a
// control character would break the answer for the upload's owner.
func ParseMetadata(v string) (map[string]string, error) {
	out := map[string]string{}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return nil, errors.New("not printable ASCII")
		}
	}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		key, val, _ := strings.Cut(pair, " ")
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, errors.New("bad key")
		}
		if _, dup := out[key]; dup {
			return nil, errors.New("duplicate key")
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		out[key] = string(b)
	}
	return out, nil
}

// checksum is a parsed Upload-Checksum header.
type checksum struct {
	alg  string
	want []byte
	h    hash.Hash
}

func parseChecksum(v string) (*checksum, error) {
	if v == "" {
		return nil, nil
	}
	alg, b64, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return nil, errBadRequest("Die Kopfzeile „Upload-Checksum“ muss aus Verfahren und Base64-Prüfsumme bestehen.")
	}
	var hh hash.Hash
	switch alg {
	case "sha1":
		hh = sha1.New()
	case "sha256":
		hh = sha256.New()
	default:
		return nil, errBadRequest(fmt.Sprintf("Das Prüfsummenverfahren „%s“ wird nicht unterstützt. Unterstützt werden sha1 und sha256.", CleanFilename(alg)))
	}
	want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(want) != hh.Size() {
		return nil, errBadRequest("Die Prüfsumme in „Upload-Checksum“ ist kein gültiger Base64-Wert der passenden Länge.")
	}
	return &checksum{alg: alg, want: want, h: hh}, nil
}

func isOffsetStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == offsetOctetStream
}

func (h *TusHandler) location(id string) string { return h.cfg.BasePath + id }

func (h *TusHandler) settings(ctx context.Context, tenantID string) (kasse.Settings, error) {
	k, err := h.cfg.Store.Kasse(ctx, tenantID)
	if err != nil {
		return kasse.Settings{}, fmt.Errorf("settings of tenant: %w", err)
	}
	return k.Settings, nil
}

// create handles POST: a new upload (creation, creation-defer-length,
// concatenation) and, with a body, its first bytes (creation-with-upload).
func (h *TusHandler) create(ctx context.Context, r *TusRequest) (*TusResponse, error) {
	s, err := h.settings(ctx, r.Principal.TenantID)
	if err != nil {
		return nil, err
	}
	if r.idemKey, err = parseIdempotencyKey(r.Header("Idempotency-Key")); err != nil {
		return nil, err
	}
	if r.idemKey != "" {
		r.idemDigest = creationDigest(r)
		if resp, err := h.replay(ctx, r, nil); resp != nil || err != nil {
			return resp, err
		}
	}
	concat := strings.TrimSpace(r.Header("Upload-Concat"))
	kind := KindSingle
	switch {
	case concat == "":
	case concat == "partial":
		kind = KindPartial
	case strings.HasPrefix(concat, "final;"):
		return h.createFinal(ctx, r, s, strings.TrimPrefix(concat, "final;"))
	default:
		return nil, errBadRequest("Die Kopfzeile „Upload-Concat“ muss „partial“ oder „final;…“ lauten.")
	}
	lengthHdr, deferHdr := r.Header("Upload-Length"), r.Header("Upload-Defer-Length")
	var length int64
	switch {
	case lengthHdr != "" && deferHdr != "":
		return nil, errBadRequest("Bitte senden Sie entweder „Upload-Length“ oder „Upload-Defer-Length“, nicht beides.")
	case deferHdr != "":
		if deferHdr != "1" {
			return nil, errBadRequest("„Upload-Defer-Length“ muss den Wert 1 haben.")
		}
		length = -1
	default:
		n, ok := parseSize(lengthHdr)
		if !ok {
			return nil, errBadRequest("Die Kopfzeile „Upload-Length“ fehlt oder ist keine gültige Größe.")
		}
		length = n
	}
	if length == 0 {
		return nil, errEmpty
	}
	if length > s.MaxFileBytes {
		return nil, errFileTooLarge(s.MaxFileBytes)
	}
	rawMeta := r.Header("Upload-Metadata")
	meta, err := ParseMetadata(rawMeta)
	if err != nil {
		return nil, errBadRequest("Die Kopfzeile „Upload-Metadata“ ist ungültig (Schlüssel und Base64-Werte, durch Kommas getrennt).")
	}
	filename := meta["filename"]
	if filename == "" {
		filename = meta["name"]
	}
	filename = CleanFilename(filename)
	declared := meta["filetype"]
	if declared == "" {
		declared = meta["type"]
	}
	declared = cleanType(declared)
	now := h.now()
	u := Upload{
		ID: newID(), TenantID: r.Principal.TenantID, PersonID: r.Principal.PersonID, Kind: kind, Status: StatusUploading,
		Length: length, Metadata: rawMeta, Filename: filename, DeclaredType: declared,
		IdempotencyKey: r.idemKey, IdempotencyDigest: r.idemDigest,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(h.lifetime(s)),
	}
	u.BlobKey = BlobKey(u.TenantID, u.ID)
	if kind != KindPartial {
		if err := CheckDeclared(filename, declared, s.AllowedFileTypes); err != nil {
			var ce *ContentError
			if errors.As(err, &ce) {
				ev := h.event(r, "intake.upload.rejected", &u, audit.OutcomeDenied, map[string]any{"reason": "declared_type", "type": ce.Detected})
				if err := h.cfg.Store.RecordUploadEvent(ctx, ev); err != nil {
					return nil, err
				}
				return nil, errFileType(ce)
			}
			return nil, err
		}
	}
	withBody := isOffsetStream(r.Header("Content-Type")) && r.ContentLength != 0
	var ck *checksum
	if withBody {
		if ck, err = parseChecksum(r.Header("Upload-Checksum")); err != nil {
			return nil, err
		}
		if length >= 0 && r.ContentLength > length {
			return nil, errOverLength
		}
	}
	if err := h.space(r, withBody); err != nil {
		return nil, err
	}
	// The multipart upload is created with the first part (writer.putPart):
	// a file sent whole in one request needs none.
	owner := ""
	if withBody {
		owner = newID()
		u.LockOwner, u.LockUntil = owner, now.Add(h.cfg.LockTTL)
	}
	q := UploadQuota{MaxSubmissionBytes: s.MaxSubmissionBytes, MaxFiles: s.MaxFilesPerUpload}
	created := h.event(r, "intake.upload.created", &u, audit.OutcomeSuccess, map[string]any{"length": length, "kind": string(kind)})
	if err := h.cfg.Store.CreateUpload(ctx, u, q, created); err != nil {
		h.abortBlobs(&u)
		if resp, ok, err := h.replayTaken(ctx, r, err); ok {
			return resp, err
		}
		var qe *QuotaError
		if errors.As(err, &qe) {
			return nil, errQuota(qe)
		}
		return nil, err
	}
	resp := &TusResponse{Status: http.StatusCreated}
	resp.set("Location", h.location(u.ID))
	if withBody {
		hctx, release := h.hold(ctx, u.ID, owner)
		err := h.write(hctx, r, &u, owner, s, ck)
		release()
		if err != nil {
			var te *tusError
			if errors.As(err, &te) && te.status == 460 {
				// The upload exists; only the chunk was refused.
				err = nil
			} else {
				return nil, err
			}
		}
		resp.set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	}
	if u.Status == StatusUploading {
		resp.set("Upload-Expires", u.ExpiresAt.UTC().Format(http.TimeFormat))
	}
	return resp, nil
}

// abortBlobs drops what an upload wrote; best effort, leftovers only cost
// space and the expiry cleanup retries.
func (h *TusHandler) abortBlobs(u *Upload) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if u.MultipartID != "" {
		if err := h.cfg.Blobs.AbortMultipart(ctx, u.BlobKey, u.MultipartID); err != nil {
			h.cfg.Logger.Warn("abort multipart upload", "upload_id", u.ID, "err", err)
		}
	}
	for _, s := range u.Staging {
		if err := h.cfg.Blobs.Delete(ctx, s.Key); err != nil {
			h.cfg.Logger.Warn("delete staging blob", "upload_id", u.ID, "err", err)
		}
	}
}

// space asks TusConfig.Space whether the request's bytes still fit.
func (h *TusHandler) space(r *TusRequest, withBody bool) error {
	if h.cfg.Space == nil {
		return nil
	}
	need := int64(0)
	if withBody && r.ContentLength > 0 {
		need = r.ContentLength
	}
	return h.cfg.Space(need)
}

func (h *TusHandler) head(ctx context.Context, r *TusRequest) (*TusResponse, error) {
	u, err := h.load(ctx, r)
	if err != nil {
		return nil, err
	}
	resp := &TusResponse{Status: http.StatusOK}
	resp.set("Cache-Control", "no-store")
	// A final upload has no offset until its parts are joined.
	if u.Kind != KindFinal || u.Status != StatusUploading {
		resp.set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	}
	if u.Deferred() {
		resp.set("Upload-Defer-Length", "1")
	} else {
		resp.set("Upload-Length", strconv.FormatInt(u.Length, 10))
	}
	if u.Metadata != "" {
		resp.set("Upload-Metadata", u.Metadata)
	}
	switch u.Kind {
	case KindPartial:
		resp.set("Upload-Concat", "partial")
	case KindFinal:
		urls := make([]string, len(u.Concat))
		for i, id := range u.Concat {
			urls[i] = h.location(id)
		}
		resp.set("Upload-Concat", "final;"+strings.Join(urls, " "))
	}
	if u.Status == StatusUploading {
		resp.set("Upload-Expires", u.ExpiresAt.UTC().Format(http.TimeFormat))
	}
	return resp, nil
}

func (h *TusHandler) patch(ctx context.Context, r *TusRequest) (*TusResponse, error) {
	if !isOffsetStream(r.Header("Content-Type")) {
		return nil, errMediaType
	}
	off, ok := parseSize(r.Header("Upload-Offset"))
	if !ok {
		return nil, errBadRequest("Die Kopfzeile „Upload-Offset“ fehlt oder ist keine gültige Zahl.")
	}
	ck, err := parseChecksum(r.Header("Upload-Checksum"))
	if err != nil {
		return nil, err
	}
	u, err := h.load(ctx, r)
	if err != nil {
		return nil, err
	}
	if u.Kind == KindFinal {
		return nil, errFinalPatch
	}
	newLength := int64(-1)
	if v := r.Header("Upload-Length"); v != "" {
		n, ok := parseSize(v)
		if !ok {
			return nil, errBadRequest("Die Kopfzeile „Upload-Length“ ist keine gültige Größe.")
		}
		if !u.Deferred() && n != u.Length {
			return nil, errBadRequest("Die Dateigröße wurde bereits festgelegt und kann nicht mehr geändert werden.")
		}
		newLength = n
	}
	s, err := h.settings(ctx, u.TenantID)
	if err != nil {
		return nil, err
	}
	if err := h.checkPatch(u, off, newLength, r.ContentLength, s); err != nil {
		return nil, err
	}
	if u.Status != StatusUploading {
		// Complete already: an empty PATCH at the end is a harmless retry.
		return h.patchResponse(u), nil
	}
	if err := h.space(r, true); err != nil {
		return nil, err
	}
	owner := newID()
	now := h.now()
	locked, err := h.cfg.Store.LockUpload(ctx, u.TenantID, u.PersonID, u.ID, owner, now.Add(h.cfg.LockTTL), now)
	if errors.Is(err, ErrUploadLocked) {
		return nil, h.errLocked()
	}
	if errors.Is(err, ErrUploadNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	u = &locked
	hctx, release := h.hold(ctx, u.ID, owner)
	defer release()
	// The state may have moved between the first read and the lock.
	if err := h.usable(u); err != nil {
		return nil, err
	}
	if err := h.checkPatch(u, off, newLength, r.ContentLength, s); err != nil {
		return nil, err
	}
	if u.Status != StatusUploading {
		return h.patchResponse(u), nil
	}
	if newLength >= 0 && u.Deferred() {
		if newLength == 0 {
			return nil, errEmpty
		}
		u.Length = newLength
		q := UploadQuota{MaxSubmissionBytes: s.MaxSubmissionBytes, MaxFiles: s.MaxFilesPerUpload}
		if err := h.cfg.Store.SetUploadLength(hctx, *u, owner, q); err != nil {
			var qe *QuotaError
			if errors.As(err, &qe) {
				return nil, errQuota(qe)
			}
			return nil, err
		}
	}
	if err := h.write(hctx, r, u, owner, s, ck); err != nil {
		return nil, err
	}
	return h.patchResponse(u), nil
}

// checkPatch applies the rules that need no lock: offset, sizes.
func (h *TusHandler) checkPatch(u *Upload, off, newLength, contentLength int64, s kasse.Settings) error {
	if off != u.Offset {
		return errOffset(u.Offset, off)
	}
	length := u.Length
	if u.Deferred() && newLength >= 0 {
		if newLength < u.Offset {
			return errBadRequest("Die angegebene Dateigröße ist kleiner als die bereits übertragenen Daten.")
		}
		if newLength > s.MaxFileBytes {
			return errFileTooLarge(s.MaxFileBytes)
		}
		length = newLength
	}
	if length >= 0 && contentLength > 0 && off+contentLength > length {
		return errOverLength
	}
	if length < 0 && contentLength > 0 && off+contentLength > s.MaxFileBytes {
		return errFileTooLarge(s.MaxFileBytes)
	}
	if u.Status != StatusUploading && contentLength > 0 {
		return errOverLength
	}
	return nil
}

func (h *TusHandler) patchResponse(u *Upload) *TusResponse {
	resp := &TusResponse{Status: http.StatusNoContent}
	resp.set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.Status == StatusUploading {
		resp.set("Upload-Expires", u.ExpiresAt.UTC().Format(http.TimeFormat))
	}
	return resp
}

// hold keeps the lease of a locked upload alive while a request works on
// it. The returned context ends when the lease is lost (another request
// took it over after the lease ran out), so the work stops writing.
func (h *TusHandler) hold(ctx context.Context, id, owner string) (context.Context, func()) {
	hctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(h.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				err := h.cfg.Store.RenewUploadLock(hctx, id, owner, h.now().Add(h.cfg.LockTTL))
				if errors.Is(err, ErrLockLost) {
					cancel(ErrLockLost)
					return
				}
				if err != nil && hctx.Err() == nil {
					h.cfg.Logger.Warn("renew upload lock", "upload_id", id, "err", err)
				}
			}
		}
	}()
	return hctx, func() {
		close(done)
		<-stopped
		cancel(nil)
		uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ucancel()
		if err := h.cfg.Store.UnlockUpload(uctx, id, owner); err != nil {
			h.cfg.Logger.Warn("release upload lock", "upload_id", id, "err", err)
		}
	}
}

func (h *TusHandler) terminate(ctx context.Context, r *TusRequest) (*TusResponse, error) {
	u, err := h.load(ctx, r)
	if err != nil {
		return nil, err
	}
	if u.Status == StatusFinal {
		return nil, problem(http.StatusConflict, "upload-eingereicht", "Bereits eingereicht",
			"Diese Datei wurde bereits eingereicht und kann nicht mehr gelöscht werden.")
	}
	owner := newID()
	now := h.now()
	locked, err := h.cfg.Store.LockUpload(ctx, u.TenantID, u.PersonID, u.ID, owner, now.Add(h.cfg.LockTTL), now)
	if errors.Is(err, ErrUploadLocked) {
		return nil, h.errLocked()
	}
	if errors.Is(err, ErrUploadNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	u = &locked
	_, release := h.hold(ctx, u.ID, owner)
	defer release()
	if err := h.usable(u); err != nil {
		return nil, err
	}
	if u.Status == StatusFinal {
		return nil, problem(http.StatusConflict, "upload-eingereicht", "Bereits eingereicht",
			"Diese Datei wurde bereits eingereicht und kann nicht mehr gelöscht werden.")
	}
	if err := h.end(ctx, r, u, owner, audit.OutcomeSuccess, nil); err != nil {
		return nil, err
	}
	return &TusResponse{Status: http.StatusNoContent}, nil
}

// end drops everything an upload stored and records it as terminated,
// with the audit event (outcome and details say why).
func (h *TusHandler) end(ctx context.Context, r *TusRequest, u *Upload, owner string, outcome audit.Outcome, details map[string]any) error {
	if err := h.dropBlobs(ctx, u); err != nil {
		return err
	}
	u.Status = StatusTerminated
	u.Parts, u.Staging = nil, nil
	u.UpdatedAt = h.now()
	return h.cfg.Store.SaveUpload(ctx, *u, owner, h.event(r, "intake.upload.terminated", u, outcome, details))
}

// dropBlobs deletes everything an upload stored: the multipart upload,
// staging segments and the object.
func (h *TusHandler) dropBlobs(ctx context.Context, u *Upload) error {
	if u.MultipartID != "" && (u.Status == StatusUploading || u.Status == StatusCompleting) {
		if err := h.cfg.Blobs.AbortMultipart(ctx, u.BlobKey, u.MultipartID); err != nil {
			return fmt.Errorf("abort multipart: %w", err)
		}
	}
	for _, s := range u.Staging {
		if err := h.cfg.Blobs.Delete(ctx, s.Key); err != nil {
			return fmt.Errorf("delete staging: %w", err)
		}
	}
	if err := h.cfg.Blobs.Delete(ctx, u.BlobKey); err != nil {
		return fmt.Errorf("delete object: %w", err)
	}
	return nil
}

// ListUploads returns the caller's uploads for the upload page.
func (h *TusHandler) ListUploads(ctx context.Context, p auth.Principal) ([]Upload, error) {
	if p.TenantID == "" || p.PersonID == "" {
		return nil, ErrUploadNotFound
	}
	return h.cfg.Store.UploadsOfPerson(ctx, p.TenantID, p.PersonID)
}
