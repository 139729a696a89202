package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"time"
)

// hashDomain starts every hashed encoding. Changing the encoding in any way
// breaks every stored chain, so a new encoding needs a new domain string.
// v2 (this one) hashes the payload fields through PayloadDigest, so
// retention can remove them from old events and the chain still verifies
// (see Redact); v1 hashed every field directly. Chains written with v1
// (development data only, before the first release) no longer verify.
const (
	hashDomain    = "postbox/audit-event/v2"
	payloadDomain = "postbox/audit-payload/v1"
)

// ComputeHash returns the hex SHA-256 over a canonical encoding of every field
// except Hash: each field is written as an 8-byte big-endian length followed
// by its bytes, so no two different events encode alike ("ab"+"c" differs
// from "a"+"bc"). Time enters as UTC unix microseconds, the precision every
// store keeps, so the hash survives a round trip through any store and does
// not depend on the time zone the event was created in.
//
// The fields split in two: the header (id, tenant, seq, time, role, type,
// subject type, outcome, prev hash) enters directly; the payload, which may
// point at a person (actor, subject id, client hash, request id, details),
// enters as its digest. A redacted event keeps the header and the digest
// only, and still hashes to the same value.
func (e Event) ComputeHash() string {
	h := sha256.New()
	writeField(h, []byte(hashDomain))
	writeField(h, []byte(e.ID))
	writeField(h, []byte(e.TenantID))
	writeInt(h, e.Seq)
	writeInt(h, e.Time.UnixMicro())
	writeField(h, []byte(e.ActorRole))
	writeField(h, []byte(e.Type))
	writeField(h, []byte(e.SubjectType))
	writeField(h, []byte(e.Outcome))
	writeField(h, []byte(e.PayloadDigest()))
	writeField(h, []byte(e.PrevHash))
	return hex.EncodeToString(h.Sum(nil))
}

// PayloadDigest is the hex SHA-256 over the payload fields, or the digest a
// redacted event carries.
func (e Event) PayloadDigest() string {
	if d, ok := e.redactedDigest(); ok {
		return d
	}
	h := sha256.New()
	writeField(h, []byte(payloadDomain))
	writeField(h, []byte(e.ActorID))
	writeField(h, []byte(e.SubjectID))
	writeField(h, []byte(e.ClientHash))
	writeField(h, []byte(e.RequestID))
	writeField(h, []byte(e.Details))
	return hex.EncodeToString(h.Sum(nil))
}

// RedactedPrefix starts the Details of a redacted event; stores use it to
// tell redacted rows apart.
const RedactedPrefix = `{"redacted":"`

var redactedDetails = regexp.MustCompile(`^\{"redacted":"([0-9a-f]{64})"\}$`)

func (e Event) redactedDigest() (string, bool) {
	if e.ActorID != "" || e.SubjectID != "" || e.ClientHash != "" || e.RequestID != "" {
		return "", false
	}
	m := redactedDetails.FindStringSubmatch(e.Details)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Redacted reports whether retention removed e's payload.
func (e Event) Redacted() bool {
	_, ok := e.redactedDigest()
	return ok
}

// Redact returns e without its payload: actor id, subject id, client hash
// and request id are emptied and Details holds only the payload digest.
// Hash, PrevHash and the header stay, so the chain verifies as before.
func Redact(e Event) Event {
	if e.Redacted() {
		return e
	}
	d := e.PayloadDigest()
	e.ActorID, e.SubjectID, e.ClientHash, e.RequestID = "", "", "", ""
	e.Details = RedactedPrefix + d + `"}`
	return e
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	writeField(h, b[:])
}

// Link makes e the successor of prev (nil for the tenant's first event): it
// sets Seq, PrevHash and Hash. It also normalises Time to UTC microseconds,
// so the linked event equals what a store returns for it.
func Link(prev *Event, e Event) Event {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Seq, e.PrevHash = 1, ""
	if prev != nil {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Hash = e.ComputeHash()
	return e
}

// ProblemKind classifies the first break found in a chain.
type ProblemKind string

const (
	// ProblemChanged: an event's stored hash does not match its content.
	ProblemChanged ProblemKind = "changed"
	// ProblemRemoved: one or more sequence numbers are missing.
	ProblemRemoved ProblemKind = "removed"
	// ProblemInserted: a sequence number occurs twice, or an event does not
	// link to the hash of its predecessor.
	ProblemInserted ProblemKind = "inserted"
)

// Problem is the first break in a tenant's chain.
type Problem struct {
	Kind    ProblemKind
	EventID string // the event at which the break shows
	Seq     int64  // that event's sequence number
	Detail  string // human-readable, names the events involved
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.Kind, p.Detail) }

// VerifyResult is the outcome of Verify. Problem is nil when the chain is
// intact. An intact chain can still have lost its newest events: compare
// LastSeq and LastHash with an anchor kept elsewhere to detect truncation.
type VerifyResult struct {
	TenantID string
	Checked  int64 // events read
	Redacted int64 // of those, events whose payload retention removed
	FirstSeq int64 // seq of the first event read (> 1 after retention cut the chain)
	LastSeq  int64
	LastHash string
	Problem  *Problem
}

// OK reports whether no problem was found.
func (r VerifyResult) OK() bool { return r.Problem == nil }

// ProblemRedacted: an event's payload was removed although the retention
// policy keeps it (e.g. a security event, or one younger than its period).
const ProblemRedacted ProblemKind = "redacted"

// Anchor is where retention cut a chain: the seq and hash of the last event
// it deleted. It is kept in the transactional database, beside the head.
type Anchor struct {
	Seq  int64
	Hash string
}

// VerifyOptions tell Verify what retention did legitimately.
type VerifyOptions struct {
	// Anchor, when set, lets the chain start after Anchor.Seq: the first
	// event read must then link to Anchor.Hash. Events up to the anchor may
	// still be present (a retention run that has not finished deleting).
	Anchor *Anchor
	// MayRedact says whether retention may have redacted the event under
	// today's policy (RetentionPolicy.MayRedact). Nil accepts every
	// redaction; a redacted event still proves its header and position in
	// the chain. A business event MayRedact refuses is still accepted when
	// a retention run recorded in the tenant's own chain (RetentionAppliedType)
	// redacted business events up to a time after it: the policy in force
	// then decides, not a period changed since. Those records are events
	// of the chain Verify walks, so a forged or altered one is a finding.
	MayRedact func(Event) bool
}

// recordedRedactions returns the latest cutoff up to which a recorded
// retention run redacted the tenant's business events (zero: none).
func recordedRedactions(ctx context.Context, store EventStore, tenantID string) (time.Time, error) {
	var cutoff time.Time
	err := store.Scan(ctx, Filter{TenantID: tenantID, Type: RetentionAppliedType, SubjectType: "kasse", SubjectID: tenantID},
		func(e Event) error {
			var d struct {
				BusinessBefore string `json:"business_before"`
				BusinessDays   int64  `json:"business_days"`
			}
			if json.Unmarshal([]byte(e.Details), &d) != nil || e.Outcome != OutcomeSuccess {
				return nil
			}
			c := e.Time.Add(-time.Duration(d.BusinessDays) * 24 * time.Hour)
			if t, err := time.Parse(time.RFC3339Nano, d.BusinessBefore); err == nil {
				c = t
			} else if d.BusinessDays <= 0 {
				return nil
			}
			if c.After(cutoff) {
				cutoff = c
			}
			return nil
		})
	return cutoff, err
}

// errStop ends the walk once the first problem is found.
var errStop = errors.New("stop")

// Verify walks the tenant's chain in Seq order and reports the first problem
// in the result. The error is only for failures to read the chain; a broken
// chain is a result, not an error.
func Verify(ctx context.Context, store EventStore, tenantID string) (VerifyResult, error) {
	return VerifyWith(ctx, store, tenantID, VerifyOptions{})
}

// VerifyWith is Verify for a chain that retention has cut or redacted.
func VerifyWith(ctx context.Context, store EventStore, tenantID string, o VerifyOptions) (VerifyResult, error) {
	res := VerifyResult{TenantID: tenantID}
	mayRedact := o.MayRedact
	if mayRedact != nil {
		// Read before the walk: Chain's callback must not use the store.
		recorded, err := recordedRedactions(ctx, store, tenantID)
		if err != nil {
			return res, fmt.Errorf("verify chain of tenant %q: retention records: %w", tenantID, err)
		}
		mayRedact = func(e Event) bool {
			return o.MayRedact(e) || ClassOf(e) == ClassBusiness && e.Time.Before(recorded)
		}
	}
	var prev *Event
	err := store.Chain(ctx, tenantID, func(e Event) error {
		res.Checked++
		if res.Checked == 1 {
			res.FirstSeq = e.Seq
			if a := o.Anchor; a != nil && a.Seq > 0 && e.Seq > a.Seq {
				prev = &Event{ID: "(retention anchor)", Seq: a.Seq, Hash: a.Hash}
			}
		}
		if p := check(prev, e); p != nil {
			res.Problem = p
			return errStop
		}
		if a := o.Anchor; a != nil && e.Seq == a.Seq && e.Hash != a.Hash {
			res.Problem = &Problem{ProblemChanged, e.ID, e.Seq, fmt.Sprintf(
				"event %s (seq %d) has hash %s, but retention recorded %s for it", e.ID, e.Seq, e.Hash, a.Hash)}
			return errStop
		}
		if e.Redacted() {
			res.Redacted++
			if mayRedact != nil && !mayRedact(e) {
				res.Problem = &Problem{ProblemRedacted, e.ID, e.Seq, fmt.Sprintf(
					"event %s (seq %d, %s of %s) lost its payload although the retention policy keeps it",
					e.ID, e.Seq, e.Type, e.Time.UTC().Format(time.RFC3339))}
				return errStop
			}
		}
		prev = &e
		res.LastSeq, res.LastHash = e.Seq, e.Hash
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return res, fmt.Errorf("verify chain of tenant %q: %w", tenantID, err)
	}
	return res, nil
}

// check compares e with its predecessor in Seq order (nil for the first).
// Order matters: a sequence break explains a hash-link break that follows
// from it, and a changed event explains nothing about its neighbours.
func check(prev *Event, e Event) *Problem {
	want, prevHash := int64(1), ""
	if prev != nil {
		want, prevHash = prev.Seq+1, prev.Hash
	}
	switch {
	case prev != nil && e.ID == prev.ID:
		if e == *prev {
			return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
				"event %s (seq %d) is returned twice: the store did not deduplicate", e.ID, e.Seq)}
		}
		return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
			"event %s is stored twice with different content (seq %d and %d): one copy was inserted or changed",
			e.ID, prev.Seq, e.Seq)}
	case prev != nil && e.Seq == prev.Seq:
		return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
			"seq %d occurs twice: events %s and %s; one of them was inserted", e.Seq, prev.ID, e.ID)}
	case prev != nil && e.Seq < prev.Seq:
		// Only a store that breaks the Chain contract gets here.
		return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
			"event %s with seq %d comes after seq %d: chain is out of order", e.ID, e.Seq, prev.Seq)}
	case e.Seq < want:
		return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
			"event %s has invalid seq %d; chains start at 1", e.ID, e.Seq)}
	case e.Seq > want:
		return &Problem{ProblemRemoved, e.ID, e.Seq, fmt.Sprintf(
			"%s missing before event %s (seq %d)%s", seqRange(want, e.Seq-1), e.ID, e.Seq, after(prev))}
	}
	if got := e.ComputeHash(); got != e.Hash {
		return &Problem{ProblemChanged, e.ID, e.Seq, fmt.Sprintf(
			"event %s (seq %d) was changed: stored hash %s, content hashes to %s", e.ID, e.Seq, e.Hash, got)}
	}
	if e.PrevHash != prevHash {
		if prev == nil {
			return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
				"event %s (seq 1) has prev hash %q, but the first event links to nothing", e.ID, e.PrevHash)}
		}
		return &Problem{ProblemInserted, e.ID, e.Seq, fmt.Sprintf(
			"event %s (seq %d) links to prev hash %s, but its predecessor %s (seq %d) has hash %s: "+
				"an event was inserted or replaced between them", e.ID, e.Seq, e.PrevHash, prev.ID, prev.Seq, prev.Hash)}
	}
	return nil
}

func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprintf("seq %d is", from)
	}
	return fmt.Sprintf("seq %d to %d are", from, to)
}

func after(prev *Event) string {
	if prev == nil {
		return ""
	}
	return fmt.Sprintf(", after event %s (seq %d)", prev.ID, prev.Seq)
}
