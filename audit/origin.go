package audit

// Building events from a request.
//
// Event types follow the scheme domain.object.verb, all lower case, words
// joined with "_", the verb in the past tense because an event records what
// happened:
//
//	auth.login.failed            auth.session.revoked     auth.device.added
//	intake.pin.issued            intake.upload.completed  intake.submitted
//	mailbox.message.sent         mailbox.thread.viewed    notifier.mail.failed
//	vorgang.status.changed       vorgang.created          audit.query
//	audit.retention.applied      kasse.settings.changed
//
// The domain is the package that records the event (auth, intake, mailbox,
// notifier, vorgang, audit, kasse). A two-part type (intake.submitted) is
// fine when the object is the domain itself. Refused attempts keep the type
// of the attempt and say so in the Outcome (denied: not allowed; failure:
// tried and failed), so one filter finds both.
//
// SubjectType names what was acted on ("vorgang", "message", "thread",
// "upload", "attachment", "person", "account", "session", "mail",
// "kasse"); SubjectID is its id, never a name, KVNR or e-mail address.
//
// Details is a small JSON object of codes, ids and numbers that explain the
// event, e.g. {"from":"eingegangen","to":"in_bearbeitung"}. It never holds
// message text, file names or content, free-text reasons, names, contact
// data, client addresses or secrets: CheckEvent rejects the keys that would
// carry them, and the outbox refuses such an event (see ForbiddenDetailKeys).
//
// Use from a handler or service:
//
//	ctx := web.AuditContext(c)   // principal, request id, client hash
//	ev := audit.NewEvent(ctx, "vorgang.status.changed", "vorgang", v.ID,
//		audit.OutcomeSuccess, audit.Details{"from": from, "to": to})
//	_, err := tx.RecordEvent(ctx, ev)  // in the transaction of the change
//
// Workers without a request use audit.WithOrigin(ctx, audit.System(tenant,
// "retention")).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
)

// Origin is who acts and from where, as far as audit events need it.
type Origin struct {
	TenantID   string
	ActorID    string // account id; person id for an Einmal-PIN session; worker name for the system
	ActorRole  string // auth.Role of the actor, or "system"
	RequestID  string
	ClientHash string // ClientHasher.Hash of the client address; "" for the system
}

// System is the origin of an event no person caused (retention, workers).
func System(tenantID, worker string) Origin {
	return Origin{TenantID: tenantID, ActorID: worker, ActorRole: "system"}
}

type originKey struct{}

// WithOrigin returns a context that carries o for NewEvent.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin stored by WithOrigin (zero without one).
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// Details are the event's small JSON object (see the package comment for
// what may go in).
type Details map[string]any

// NewEvent builds an event of the origin in ctx. Seq, hashes, ID and Time
// are set by the outbox (tx.RecordEvent).
func NewEvent(ctx context.Context, typ, subjectType, subjectID string, outcome Outcome, details Details) Event {
	return OriginFrom(ctx).Event(typ, subjectType, subjectID, outcome, details)
}

// Event builds an event of o.
func (o Origin) Event(typ, subjectType, subjectID string, outcome Outcome, details Details) Event {
	if outcome == "" {
		outcome = OutcomeSuccess
	}
	d := "{}"
	if len(details) > 0 {
		// A map of plain values cannot fail to marshal; a value that does
		// is a programming error the outbox then refuses as invalid JSON.
		raw, err := json.Marshal(map[string]any(details))
		if err == nil {
			d = string(raw)
		} else {
			d = ""
		}
	}
	return Event{
		TenantID: o.TenantID, ActorID: o.ActorID, ActorRole: o.ActorRole,
		Type: typ, SubjectType: subjectType, SubjectID: subjectID, Outcome: outcome,
		ClientHash: o.ClientHash, RequestID: o.RequestID, Details: d,
	}
}

// ClientHasher turns a client address into the pseudonym stored in events.
//
// DSGVO: an IP address is personal data (CJEU C-582/14 Breyer). Following
// the German supervisory authorities' advice for logs and analytics, the
// address is first shortened so it no longer points at one connection:
// IPv4 to its /24 network (last octet zeroed) and IPv6 to its /48 (the last
// 80 bits zeroed, as in the common "anonymize IP" practice). A /48 is often
// one customer site, which is why the result is never stored in clear: it is
// an HMAC-SHA256 under a server-side key, so nobody without the key can
// test candidate networks against it (the whole IPv4 space is only 2^24
// /24 networks, trivially enumerable for an unkeyed hash). Truncated to 128
// bits, which keeps distinct networks apart. The key is separate from the
// key auth uses for rate-limit buckets (full addresses), so the two hashes
// cannot be joined. The result lets an auditor see that events came from
// the same network, which is what an investigation needs, and it is deleted
// with the event.
type ClientHasher struct{ key []byte }

// NewClientHasher uses key (32 bytes from the master key's HKDF).
func NewClientHasher(key []byte) *ClientHasher {
	return &ClientHasher{key: append([]byte(nil), key...)}
}

// Hash returns the pseudonym of addr ("ip" or "ip:port"); "" for an empty
// or unparsable address.
func (h *ClientHasher) Hash(addr string) string {
	if h == nil || len(h.key) == 0 {
		return ""
	}
	p, ok := ClientNetwork(addr)
	if !ok {
		return ""
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("postbox/audit-client-network/v1\x00"))
	m.Write([]byte(p.String()))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ClientNetwork is the shortened network of addr that ClientHasher hashes.
func ClientNetwork(addr string) (netip.Prefix, bool) {
	addr = strings.TrimSpace(addr)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ip, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return netip.Prefix{}, false
	}
	ip = ip.WithZone("").Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}
