package audit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"postbox/kasse"
)

// Retention of audit events.
//
// Two classes, decided by type and outcome (ClassOf):
//
//   - security: logins, sessions, devices, PINs, accounts, settings,
//     auditors' queries, and EVERY refused or failed action of any type.
//     Kept for Settings.AuditRetention (default 10 years). These events
//     are the evidence of who could access social data (§ 35 SGB I, § 78
//     SGB X) and of the technical and organisational measures (Art. 32
//     DSGVO); incidents and claims surface years later, and ten years
//     matches the longest period a Kasse keeps the underlying records
//     (§ 304 Abs. 1 SGB V; § 147 AO/§ 257 HGB for booking records).
//   - business: successful steps of the work itself — Vorgang status
//     changes, Postfach messages and views, uploads and submissions, mail
//     notices. They document processing of records that are themselves
//     deleted after Settings.MessageRetention (default 6 years, the
//     "gesetzliche Aufbewahrungsfristen" of seed 004, § 257 Abs. 4 HGB
//     for business letters). Keeping the trail of a message longer than
//     the message would keep personal data without purpose (Art. 5 Abs. 1
//     lit. e DSGVO, storage limitation), so they follow the records.
//
// Deleting single events from the middle of a hash chain would make the
// chain unverifiable, so retention works in two steps that keep it intact:
//
//  1. Events older than the security period are deleted as a prefix of
//     the chain (by seq), recording the last deleted event as the chain's
//     anchor in the transactional database first; Verify then starts there.
//     ClickHouse drops whole month partitions where every row in them is
//     due and runs a DELETE mutation for the rest.
//  2. Business events older than their period are redacted (Redact): the
//     payload that can point at a person — actor, subject id, client hash,
//     request id, details — is removed, the header (type, time, outcome,
//     position, hashes) stays. The hash covers the payload through its
//     digest, so the chain still verifies and the header stays protected.

// Class is an event's retention class.
type Class string

const (
	ClassSecurity Class = "security"
	ClassBusiness Class = "business"
)

// BusinessTypes are the event types of the business class: an entry ending
// in "." is a prefix, any other entry an exact type. Only successful events
// of these types are business events.
var BusinessTypes = []string{
	"vorgang.",
	"mailbox.",
	"intake.upload.",
	"intake.file.",
	"intake.submitted",
	"notifier.",
}

// SecurityTypes are the event types of the security class, in the same
// form as BusinessTypes. ClassOf does not need them (whatever is not a
// business event is a security event), but every event type the code base
// records must match exactly one of the two lists: the test
// TestEveryEventTypeIsClassified reads the sources, so a new event domain
// fails it until somebody decides which class it belongs to, instead of
// silently being kept for the security period.
var SecurityTypes = []string{
	"auth.",
	"audit.",
	"kasse.",
	"intake.pin.",
}

// ClassOf says which retention class an event belongs to. Unknown types
// are security events: when in doubt the evidence is kept.
func ClassOf(e Event) Class {
	if e.Outcome != OutcomeSuccess {
		return ClassSecurity
	}
	if IsBusinessType(e.Type) {
		return ClassBusiness
	}
	return ClassSecurity
}

// IsBusinessType reports whether typ is listed in BusinessTypes.
func IsBusinessType(typ string) bool { return listed(typ, BusinessTypes) }

// IsSecurityType reports whether typ is listed in SecurityTypes.
func IsSecurityType(typ string) bool { return listed(typ, SecurityTypes) }

// listed: an entry ending in "." is a prefix, any other an exact type.
func listed(typ string, list []string) bool {
	for _, b := range list {
		if typ == b || strings.HasSuffix(b, ".") && strings.HasPrefix(typ, b) {
			return true
		}
	}
	return false
}

var plainType = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)*\.?$`)

// BusinessPredicate renders ClassOf(e) == ClassBusiness as an SQL condition
// for a store, given how it writes "column starts with literal". The
// literals come from BusinessTypes, which hold only [a-z_.], so they are
// safe to inline.
func BusinessPredicate(startsWith func(col, prefix string) string) string {
	var alts []string
	for _, b := range BusinessTypes {
		if !plainType.MatchString(b) {
			panic("audit: business type " + b + " is not a plain type")
		}
		if strings.HasSuffix(b, ".") {
			alts = append(alts, startsWith("type", b))
		} else {
			alts = append(alts, "type = '"+b+"'")
		}
	}
	return "(outcome = 'success' AND (" + strings.Join(alts, " OR ") + "))"
}

// RetentionPolicy is how long a tenant keeps each class.
type RetentionPolicy struct {
	Security time.Duration
	Business time.Duration
}

// PolicyFor reads the tenant's settings: security events for
// AuditRetention, business events for MessageRetention but never longer
// than security events.
func PolicyFor(s kasse.Settings) RetentionPolicy {
	return RetentionPolicy{Security: s.AuditRetention, Business: min(s.MessageRetention, s.AuditRetention)}
}

// RetentionAppliedType is the event retention records per tenant and run
// that changed something; its details say up to when business events were
// redacted ("business_before", or the run's time less "business_days" in
// records written before that field existed).
const RetentionAppliedType = "audit.retention.applied"

// MayRedact is the VerifyOptions.MayRedact of the policy at now: only
// business events older than their period may have lost their payload.
// VerifyWith also accepts what an earlier retention run recorded, so a
// period lengthened after a redaction does not turn it into a finding.
func (p RetentionPolicy) MayRedact(now time.Time) func(Event) bool {
	cutoff := now.Add(-p.Business)
	return func(e Event) bool { return ClassOf(e) == ClassBusiness && e.Time.Before(cutoff) }
}

// RetentionStore is what retention needs from an event store beyond
// EventStore.
type RetentionStore interface {
	// ChainPrefixEnd returns the last event of the longest prefix of the
	// tenant's chain (by seq) whose events are all older than before;
	// false when even the first event is not.
	ChainPrefixEnd(ctx context.Context, tenantID string, before time.Time) (Event, bool, error)
	// DeleteChainPrefixes removes, for each tenant, the events with seq up
	// to through[tenant], and reports how many it removed.
	DeleteChainPrefixes(ctx context.Context, through map[string]int64) (int64, error)
	// RedactBusiness replaces the tenant's business events (ClassOf) older
	// than before that are not redacted yet by Redact(e), and reports how
	// many it redacted.
	RedactBusiness(ctx context.Context, tenantID string, before time.Time) (int64, error)
}

// AnchorStore keeps where retention cut each tenant's chain; the
// transactional database implements it beside the chain head.
type AnchorStore interface {
	ChainAnchor(ctx context.Context, tenantID string) (Anchor, bool, error)
	// SetChainAnchor moves the anchor forward (never back).
	SetChainAnchor(ctx context.Context, tenantID string, a Anchor) error
}

// Recorder writes one audit event in a transaction of its own.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}

// RetentionEventStore is an event store that supports retention.
type RetentionEventStore interface {
	EventStore
	RetentionStore
}

// Retention applies the policies of every tenant.
type Retention struct {
	Events   RetentionEventStore
	Anchors  AnchorStore
	Recorder Recorder // records audit.retention.applied per tenant (optional)
	Now      func() time.Time
}

// RetentionReport says what one run did for one tenant.
type RetentionReport struct {
	TenantID  string
	Policy    RetentionPolicy
	Redacted  int64  // business events that lost their payload
	Anchor    Anchor // where the chain now starts (zero: never cut)
	Truncated bool   // the anchor moved in this run
}

// Apply runs retention for the tenants (their settings give the policy):
// each chain's expired prefix is anchored and then deleted in one pass over
// the store, so ClickHouse can drop whole partitions that hold only expired
// rows of every tenant; then expired business events are redacted. It returns
// a report per tenant and the number of events deleted in all.
func (r *Retention) Apply(ctx context.Context, tenants []kasse.Kasse) ([]RetentionReport, int64, error) {
	now := time.Now().UTC()
	if r.Now != nil {
		now = r.Now()
	}
	reports := make([]RetentionReport, 0, len(tenants))
	through := map[string]int64{}
	for _, k := range tenants {
		p := PolicyFor(k.Settings)
		if p.Security <= 0 || p.Business <= 0 {
			return reports, 0, fmt.Errorf("retention of %s: periods must be positive (%v, %v)", k.ID, p.Security, p.Business)
		}
		rep := RetentionReport{TenantID: k.ID, Policy: p}
		old, hasOld, err := r.Anchors.ChainAnchor(ctx, k.ID)
		if err != nil {
			return reports, 0, fmt.Errorf("retention of %s: %w", k.ID, err)
		}
		rep.Anchor = old
		end, ok, err := r.Events.ChainPrefixEnd(ctx, k.ID, now.Add(-p.Security))
		if err != nil {
			return reports, 0, fmt.Errorf("retention of %s: %w", k.ID, err)
		}
		if ok && (!hasOld || end.Seq > old.Seq) {
			// Anchor first: a crash before the delete leaves extra events,
			// which Verify accepts; the other order would leave a gap.
			rep.Anchor = Anchor{Seq: end.Seq, Hash: end.Hash}
			if err := r.Anchors.SetChainAnchor(ctx, k.ID, rep.Anchor); err != nil {
				return reports, 0, fmt.Errorf("retention of %s: %w", k.ID, err)
			}
			rep.Truncated = true
		}
		if rep.Anchor.Seq > 0 {
			through[k.ID] = rep.Anchor.Seq // also finishes an interrupted earlier run
		}
		reports = append(reports, rep)
	}
	deleted, err := r.Events.DeleteChainPrefixes(ctx, through)
	if err != nil {
		return reports, deleted, fmt.Errorf("retention: delete expired events: %w", err)
	}
	// Redact after deleting, so nothing is redacted only to be deleted.
	for i, rep := range reports {
		n, err := r.Events.RedactBusiness(ctx, rep.TenantID, now.Add(-rep.Policy.Business))
		if err != nil {
			return reports, deleted, fmt.Errorf("retention of %s: redact: %w", rep.TenantID, err)
		}
		reports[i].Redacted = n
	}
	if r.Recorder != nil {
		var errs []error
		for _, rep := range reports {
			if rep.Redacted == 0 && !rep.Truncated {
				continue
			}
			ev := System(rep.TenantID, "retention").Event(RetentionAppliedType, "kasse", rep.TenantID, OutcomeSuccess, Details{
				"redacted": rep.Redacted, "through_seq": rep.Anchor.Seq,
				"security_days": int(rep.Policy.Security / (24 * time.Hour)), "business_days": int(rep.Policy.Business / (24 * time.Hour)),
				// Verify judges redactions by this, not by later settings.
				"business_before": now.Add(-rep.Policy.Business).Format(time.RFC3339Nano),
			})
			errs = append(errs, r.Recorder.Record(ctx, ev))
		}
		if err := errors.Join(errs...); err != nil {
			return reports, deleted, fmt.Errorf("retention: record: %w", err)
		}
	}
	return reports, deleted, nil
}
