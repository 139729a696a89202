package audit

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AuditorRoles may read the audit trail: auth.RoleAuditor (see
// StatusChangerRoles for why this is a string).
var AuditorRoles = []string{"auditor"}

// MaxPage is the largest page an auditor can ask for.
const MaxPage = 1000

// AuditorService answers auditors' questions about their own tenant. It
// only reads; every question is recorded as an audit.query event before it
// is answered, so reading the trail leaves a trace in it.
type AuditorService struct {
	Events   EventStore
	Recorder Recorder
}

// filterValue is what an id or type in a filter may look like: no spaces,
// no "@", nothing that needs quoting, so the value can be recorded in the
// audit.query event as it is.
var filterValue = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// prepare checks the caller and the filter, pins the tenant to the
// caller's and records the query.
func (s *AuditorService) prepare(ctx context.Context, kind string, f *Filter) error {
	o := OriginFrom(ctx)
	if o.TenantID == "" || !roleIn(o.ActorRole, AuditorRoles) && o.ActorRole != OperatorRole {
		return ErrNotFound
	}
	f.TenantID = o.TenantID
	for _, v := range []struct{ field, value string }{
		{"type", f.Type}, {"actor", f.ActorID}, {"subject_type", f.SubjectType}, {"subject_id", f.SubjectID},
	} {
		if v.value != "" && !filterValue.MatchString(v.value) {
			return &InputError{v.field, fmt.Sprintf("„%s“ enthält Zeichen, die in diesem Filter nicht vorkommen können (erlaubt: Buchstaben, Ziffern, . _ : -).", v.field)}
		}
	}
	switch f.Outcome {
	case "", OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		return &InputError{"outcome", "Ergebnis muss success, failure oder denied sein."}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return &InputError{"to", "Das Ende des Zeitraums muss nach dem Anfang liegen."}
	}
	d := Details{"kind": kind}
	if !f.From.IsZero() {
		d["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		d["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range map[string]string{"type": f.Type, "actor": f.ActorID, "outcome": string(f.Outcome)} {
		if v != "" {
			d[k] = v
		}
	}
	if f.After != nil {
		d["page"] = "next"
	}
	// What was looked at is the event's subject: a query about one
	// Vorgang or person is recorded against it.
	subjType, subjID := "kasse", o.TenantID
	if f.SubjectID != "" || f.SubjectType != "" {
		subjType, subjID = f.SubjectType, f.SubjectID
		if subjType == "" {
			subjType = "any"
		}
	}
	if err := s.Recorder.Record(ctx, o.Event("audit.query", subjType, subjID, OutcomeSuccess, d)); err != nil {
		return fmt.Errorf("record audit query: %w", err)
	}
	return nil
}

// OperatorRole is the role the command line records for its queries.
const OperatorRole = "operator"

// Page returns one page of events (Limit 1..MaxPage, default 100) and the
// cursor of the next page, nil after the last one.
func (s *AuditorService) Page(ctx context.Context, f Filter) ([]Event, *Cursor, error) {
	switch {
	case f.Limit == 0:
		f.Limit = 100
	case f.Limit < 0 || f.Limit > MaxPage:
		return nil, nil, &InputError{"limit", fmt.Sprintf("limit muss zwischen 1 und %d liegen.", MaxPage)}
	}
	if err := s.prepare(ctx, "events", &f); err != nil {
		return nil, nil, err
	}
	evs, err := s.Events.Query(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	if len(evs) < f.Limit {
		return evs, nil, nil
	}
	last := evs[len(evs)-1]
	return evs, &Cursor{Time: last.Time, ID: last.ID}, nil
}

// Export checks and records the query and returns a function that streams
// every matching event to fn. Calling it is separate so an HTTP handler can
// answer a bad filter with an error before it starts the stream.
func (s *AuditorService) Export(ctx context.Context, format string, f Filter) (func(ctx context.Context, fn func(Event) error) error, error) {
	f.Limit = 0
	if err := s.prepare(ctx, "export_"+format, &f); err != nil {
		return nil, err
	}
	return func(ctx context.Context, fn func(Event) error) error { return s.Events.Scan(ctx, f, fn) }, nil
}

// Counts returns the number of events per UTC day and type.
func (s *AuditorService) Counts(ctx context.Context, f Filter) ([]DayCount, error) {
	f.After, f.Limit = nil, 0
	if err := s.prepare(ctx, "counts", &f); err != nil {
		return nil, err
	}
	return s.Events.CountByDayAndType(ctx, f)
}

// EncodeCursor makes the opaque page token of the API.
func EncodeCursor(c *Cursor) string {
	if c == nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("v1|" + strconv.FormatInt(c.Time.UnixMicro(), 10) + "|" + c.ID))
}

// ErrBadCursor is returned for a page token this service did not make.
var ErrBadCursor = errors.New("invalid cursor")

// DecodeCursor reads a token of EncodeCursor.
func DecodeCursor(s string) (*Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrBadCursor
	}
	parts := strings.SplitN(string(raw), "|", 3)
	if len(parts) != 3 || parts[0] != "v1" || parts[2] == "" || len(parts[2]) > 128 {
		return nil, ErrBadCursor
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || us < 0 {
		return nil, ErrBadCursor
	}
	return &Cursor{Time: time.UnixMicro(us).UTC(), ID: parts[2]}, nil
}

// EventJSON is an event as the API and the NDJSON export show it.
type EventJSON struct {
	ID          string          `json:"id"`
	TenantID    string          `json:"tenant_id"`
	Seq         int64           `json:"seq"`
	Time        time.Time       `json:"time"`
	ActorID     string          `json:"actor_id"`
	ActorRole   string          `json:"actor_role"`
	Type        string          `json:"type"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Outcome     Outcome         `json:"outcome"`
	ClientHash  string          `json:"client_hash"`
	RequestID   string          `json:"request_id"`
	Details     json.RawMessage `json:"details"`
	Redacted    bool            `json:"redacted,omitempty"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
}

// JSON returns the API form of e.
func (e Event) JSON() EventJSON {
	d := json.RawMessage(e.Details)
	if !json.Valid(d) {
		// Never break the export on one odd row; show it as a string.
		d, _ = json.Marshal(e.Details)
	}
	return EventJSON{ID: e.ID, TenantID: e.TenantID, Seq: e.Seq, Time: e.Time.UTC(), ActorID: e.ActorID, ActorRole: e.ActorRole,
		Type: e.Type, SubjectType: e.SubjectType, SubjectID: e.SubjectID, Outcome: e.Outcome, ClientHash: e.ClientHash,
		RequestID: e.RequestID, Details: d, Redacted: e.Redacted(), PrevHash: e.PrevHash, Hash: e.Hash}
}

// CSVHeader are the columns of the CSV export: every field, including the
// hashes, so an export can be checked against the chain.
var CSVHeader = []string{"id", "tenant_id", "seq", "time", "actor_id", "actor_role", "type", "subject_type", "subject_id",
	"outcome", "client_hash", "request_id", "details", "prev_hash", "hash"}

// CSVRecord is e as one CSV row, safe to open in a spreadsheet: a cell that
// starts with = + - @ (or tab/CR, which some programs strip first) gets a
// leading ' so it is shown as text, never run as a formula (OWASP "CSV
// injection"). Ids, types and details are data an attacker can influence.
func CSVRecord(e Event) []string {
	rec := []string{e.ID, e.TenantID, strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), e.ActorID, e.ActorRole,
		e.Type, e.SubjectType, e.SubjectID, string(e.Outcome), e.ClientHash, e.RequestID, e.Details, e.PrevHash, e.Hash}
	for i, c := range rec {
		rec[i] = SafeCell(c)
	}
	return rec
}

// SafeCell defuses a spreadsheet formula in one CSV cell.
func SafeCell(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
		return "'" + c
	}
	return c
}

// ExportWriter writes events in one export format, one at a time.
type ExportWriter interface {
	Write(e Event) error
	// Fail ends an export that broke off, so the reader cannot take the
	// file for complete.
	Fail(err error) error
	Flush() error
}

// NewExportWriter returns the writer for format "csv" or "ndjson".
func NewExportWriter(w io.Writer, format string) (ExportWriter, error) {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return nil, err
		}
		return csvExport{cw}, nil
	case "ndjson", "json":
		return ndjsonExport{json.NewEncoder(w), w}, nil
	}
	return nil, &InputError{"format", "Format muss csv oder ndjson sein."}
}

type csvExport struct{ w *csv.Writer }

func (x csvExport) Write(e Event) error { return x.w.Write(CSVRecord(e)) }
func (x csvExport) Flush() error        { x.w.Flush(); return x.w.Error() }
func (x csvExport) Fail(error) error {
	_ = x.w.Write([]string{"FEHLER: Der Export wurde abgebrochen und ist unvollständig."})
	return x.Flush()
}

type ndjsonExport struct {
	enc *json.Encoder
	w   io.Writer
}

func (x ndjsonExport) Write(e Event) error { return x.enc.Encode(e.JSON()) }
func (x ndjsonExport) Flush() error {
	if f, ok := x.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}
func (x ndjsonExport) Fail(error) error {
	_ = x.enc.Encode(map[string]string{"error": "Der Export wurde abgebrochen und ist unvollständig."})
	return x.Flush()
}
