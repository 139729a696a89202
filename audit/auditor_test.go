package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+49 511": "'+49 511", "-2": "'-2", "@SUM(A1)": "'@SUM(A1)", "\t=x": "'\t=x", "\r=x": "'\r=x",
		"": "", "auth.login": "auth.login", "a=b": "a=b", "'=x": "'=x",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := &Cursor{Time: time.Date(2026, 3, 30, 12, 0, 0, 123456000, time.UTC), ID: "0190-abc"}
	got, err := DecodeCursor(EncodeCursor(c))
	if err != nil || !got.Time.Equal(c.Time) || got.ID != c.ID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "!!", "djF8eHx5", "djJ8MTIzfGlk" /* v2|123|id */} {
		if _, err := DecodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeCursor(%q): %v", bad, err)
		}
	}
}

type countingRecorder struct{ events []Event }

func (r *countingRecorder) Record(_ context.Context, e Event) error {
	r.events = append(r.events, e)
	return nil
}

type emptyStore struct {
	EventStore
	asked *[]string // tenants queried
}

func (s emptyStore) Query(_ context.Context, f Filter) ([]Event, error) {
	*s.asked = append(*s.asked, f.TenantID)
	return nil, nil
}

func TestAuditorServiceOnlyForAuditorsOfTheirTenant(t *testing.T) {
	rec := &countingRecorder{}
	var asked []string
	s := &AuditorService{Events: emptyStore{asked: &asked}, Recorder: rec}
	for _, role := range []string{"caseworker", "insured", "kasse_admin", ""} {
		ctx := WithOrigin(context.Background(), Origin{TenantID: "k1", ActorID: "a", ActorRole: role})
		if _, _, err := s.Page(ctx, Filter{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("role %q: %v", role, err)
		}
	}
	if len(rec.events) != 0 {
		t.Fatalf("refused queries were recorded: %+v", rec.events)
	}
	ctx := WithOrigin(context.Background(), Origin{TenantID: "k1", ActorID: "a", ActorRole: "auditor"})
	if _, _, err := s.Page(ctx, Filter{TenantID: "k2", Type: "auth.login"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.events) != 1 || rec.events[0].TenantID != "k1" || rec.events[0].Type != "audit.query" {
		t.Fatalf("recorded %+v", rec.events)
	}
	if len(asked) != 1 || asked[0] != "k1" {
		t.Fatalf("store asked for tenants %v; the filter's tenant must be replaced by the auditor's", asked)
	}
}
