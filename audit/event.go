// Package audit holds audit events, their tamper-evident chain, the Vorgang
// status model and the queries auditors run.
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outcome of an audited action.
type Outcome string

const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeDenied  Outcome = "denied"
)

// Event is one audited action. It never holds message text, file content or
// secrets; ClientHash is a keyed hash of the client address (DSGVO).
type Event struct {
	ID          string // UUID, unique across all tenants; the dedupe key
	TenantID    string
	Seq         int64 // position in the tenant's hash chain, 1-based
	Time        time.Time
	ActorID     string
	ActorRole   string
	Type        string // e.g. "auth.login", "intake.upload.created"
	SubjectType string // e.g. "vorgang", "message", "upload", "person"
	SubjectID   string
	Outcome     Outcome
	ClientHash  string
	RequestID   string
	Details     string // small JSON object, no personal data
	PrevHash    string // hex SHA-256 of the previous event in the chain
	Hash        string // hex SHA-256 over this event's fields and PrevHash
}

// Filter selects events for auditors. Zero values mean "any".
type Filter struct {
	TenantID    string // required
	From, To    time.Time
	Type        string
	ActorID     string
	SubjectType string
	SubjectID   string
	Outcome     Outcome
	// After is the cursor: return events ordered after this one. Events are
	// ordered by (Time, ID).
	After *Cursor
	Limit int
}

// Cursor points at the last event of a page.
type Cursor struct {
	Time time.Time
	ID   string
}

// DayCount is the number of events of one type on one day (UTC).
type DayCount struct {
	Day   time.Time
	Type  string
	Count int64
}

// ErrInvalidFilter is returned for a filter without tenant or with a bad range.
var ErrInvalidFilter = errors.New("invalid audit filter")

// Stored event times must fit ClickHouse's DateTime (UInt32 seconds); the
// SQLite store applies the same bounds, so both accept the same events.
var (
	minStoredTime = time.Unix(0, 0)
	maxStoredTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ValidateStored checks what every event store requires of an event before
// it appends it: an id, a tenant, a time in 1970..2105, no negative seq.
func (e Event) ValidateStored() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("audit event without id (tenant %q, type %q)", e.TenantID, e.Type)
	case e.TenantID == "":
		return fmt.Errorf("audit event %s without tenant", e.ID)
	case e.Time.Before(minStoredTime) || !e.Time.Before(maxStoredTime):
		return fmt.Errorf("audit event %s: time %v outside 1970..2105", e.ID, e.Time)
	case e.Seq < 0:
		return fmt.Errorf("audit event %s: negative seq %d", e.ID, e.Seq)
	}
	return nil
}

// Validate checks what every event store requires of a filter: a tenant, a
// range whose end (exclusive) is after its start (inclusive), no negative limit.
func (f Filter) Validate() error {
	switch {
	case f.TenantID == "":
		return fmt.Errorf("%w: no tenant", ErrInvalidFilter)
	case !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From):
		return fmt.Errorf("%w: to %v is not after from %v", ErrInvalidFilter, f.To, f.From)
	case f.Limit < 0:
		return fmt.Errorf("%w: negative limit %d", ErrInvalidFilter, f.Limit)
	}
	return nil
}

// EventStore is where shipped events live for auditors: ClickHouse in server
// mode, a SQLite table in the embedded default. Append is idempotent by ID:
// appending an event twice leaves it visible once in every query.
type EventStore interface {
	Append(ctx context.Context, events []Event) error
	Query(ctx context.Context, f Filter) ([]Event, error)
	// Scan calls fn for every event Query would return, in the same order,
	// while reading them from the store, so an export of millions of events
	// holds one at a time. fn must not use the store. Scan stops with fn's
	// error, wrapped.
	Scan(ctx context.Context, f Filter, fn func(Event) error) error
	// Chain returns the tenant's events ordered by Seq, for verification.
	Chain(ctx context.Context, tenantID string, fn func(Event) error) error
	CountByDayAndType(ctx context.Context, f Filter) ([]DayCount, error)
	Ping(ctx context.Context) error
}
