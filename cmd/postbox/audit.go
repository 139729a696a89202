package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/web"
)

// auditWiring is the audit side of serve: the Vorgänge and auditor APIs,
// the event shipper and the daily retention.
type auditWiring struct {
	a       *app
	shipper *audit.Shipper
}

// mountAudit serves the Vorgang and auditor APIs (after UseSessions; serve
// installs UseAuditOrigin before every route, so events of all routes get
// the client's network hash).
func mountAudit(srv *web.Server, a *app) *auditWiring {
	web.MountVorgaenge(srv.App(), &audit.VorgangService{Store: a.db.Vorgaenge()}, web.VorgangOptions{})
	web.MountAudit(srv.App(), &audit.AuditorService{Events: a.events, Recorder: a.db.AuditRecorder()}, web.AuditOptions{Logger: a.log})
	return &auditWiring{a: a, shipper: &audit.Shipper{Outbox: a.db, Store: a.events, Interval: a.cfg.EventShipInterval, Logger: a.log}}
}

// start runs the shipper and the daily retention until ctx ends.
func (w *auditWiring) start(ctx context.Context, wg *sync.WaitGroup, jobs *periodic) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.shipper.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		// First run an hour after start, so a restart loop does not
		// hammer the event store; then daily.
		jobs.run(ctx, "audit-retention", time.Hour, 24*time.Hour, func(ctx context.Context) {
			if _, err := runRetention(ctx, w.a, io.Discard, defaultOutboxKeep); err != nil && ctx.Err() == nil {
				w.a.log.Warn("audit retention failed; next try in a day", "err", err)
			}
		})
	}()
}

// defaultOutboxKeep is how long shipped events stay in the transactional
// outbox, to ship them again if the event store loses recent data
// (ClickHouse acknowledges inserts before they are on disk).
const defaultOutboxKeep = 7 * 24 * time.Hour

const auditUsage = `usage:
  postbox audit verify --kasse ID         recompute the Kasse's hash chain; fails naming the first bad event
  postbox audit query --kasse ID [--from T] [--to T] [--type T] [--actor ID] [--subject-type T] [--subject ID]
                      [--outcome success|failure|denied] [--format csv|json]
                                          stream matching events to stdout (json: one object per line)
  postbox audit retention [--outbox-keep 168h]
                                          delete and redact expired events of every Kasse
  postbox audit reship --kasse ID --since T
                                          queue the Kasse's events since T for shipping again`

func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(auditUsage)
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], getenv, stdout)
	case "query":
		return auditQuery(ctx, args[1:], getenv, stdout)
	case "retention":
		return auditRetention(ctx, args[1:], getenv, stdout)
	case "reship":
		return auditReship(ctx, args[1:], getenv, stdout)
	}
	return fmt.Errorf("unknown audit command %q\n%s", args[0], auditUsage)
}

// openQuiet opens the app for a one-shot command without log output.
func openQuiet(ctx context.Context, cfg *Config) (*app, error) {
	return openApp(ctx, cfg, newLogger(io.Discard, cfg.LogLevel))
}

// shipPending ships what waits, so a check or query covers every
// committed event.
func shipPending(ctx context.Context, a *app) error {
	sh := &audit.Shipper{Outbox: a.db, Store: a.events}
	for {
		n, err := sh.ShipOnce(ctx)
		if err != nil {
			return fmt.Errorf("ship pending events: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var kasseID string
	cfg, _, err := parseConfig("audit verify", args, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&kasseID, "kasse", "", "Kasse (tenant) id")
	})
	if err != nil {
		return err
	}
	if kasseID == "" {
		return errors.New("audit verify: --kasse is required")
	}
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := shipPending(ctx, a); err != nil {
		return err
	}
	o := audit.VerifyOptions{}
	if anchor, ok, err := a.db.ChainAnchor(ctx, kasseID); err != nil {
		return err
	} else if ok {
		o.Anchor = &anchor
	}
	// Redactions are legitimate only where the Kasse's policy allows them.
	if k, err := a.db.Kasse(ctx, kasseID); err == nil {
		o.MayRedact = audit.PolicyFor(k.Settings).MayRedact(time.Now())
	} else if !errors.Is(err, kasse.ErrNotFound) {
		return err
	}
	res, err := audit.VerifyWith(ctx, a.events, kasseID, o)
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("audit chain of %s is broken: %s", kasseID, res.Problem.String())
	}
	// The head in the transactional database anchors the end of the chain, so
	// events removed from the end are found too.
	seq, hash, err := a.db.ChainHead(ctx, kasseID)
	if err != nil {
		return err
	}
	if res.LastSeq != seq || res.LastHash != hash {
		if res.LastSeq < seq {
			return fmt.Errorf("audit chain of %s is broken: removed: the event store ends at seq %d, the database recorded seq %d: "+
				"the last %d event(s) were removed", kasseID, res.LastSeq, seq, seq-res.LastSeq)
		}
		return fmt.Errorf("audit chain of %s is broken: the event store ends at seq %d (hash %s), the database recorded seq %d (hash %s)",
			kasseID, res.LastSeq, res.LastHash, seq, hash)
	}
	msg := fmt.Sprintf("audit chain of %s intact: %d events", kasseID, res.Checked)
	if o.Anchor != nil {
		msg += fmt.Sprintf(", starting after seq %d (retention)", o.Anchor.Seq)
	}
	if res.Redacted > 0 {
		msg += fmt.Sprintf(", %d redacted by retention", res.Redacted)
	}
	fmt.Fprintln(stdout, msg)
	return nil
}

// parseCLITime reads --from/--to like the API: RFC 3339 or a date (UTC);
// a date as upper bound includes that day.
func parseCLITime(flagName, s string, upper bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if upper {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("--%s %q: want YYYY-MM-DD or an RFC 3339 time", flagName, s)
	}
	return t, nil
}

func auditQuery(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var kasseID, from, to, typ, actor, subjType, subj, outcome, format string
	cfg, _, err := parseConfig("audit query", args, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&kasseID, "kasse", "", "Kasse (tenant) id")
		fs.StringVar(&from, "from", "", "first instant (RFC 3339) or day (YYYY-MM-DD, UTC), inclusive")
		fs.StringVar(&to, "to", "", "end instant (RFC 3339, exclusive) or last day (YYYY-MM-DD, inclusive)")
		fs.StringVar(&typ, "type", "", "event type, e.g. vorgang.status.changed")
		fs.StringVar(&actor, "actor", "", "actor id")
		fs.StringVar(&subjType, "subject-type", "", "subject type, e.g. vorgang, person, message")
		fs.StringVar(&subj, "subject", "", "subject id")
		fs.StringVar(&outcome, "outcome", "", "success, failure or denied")
		fs.StringVar(&format, "format", "csv", "csv or json (one JSON object per line)")
	})
	if err != nil {
		return err
	}
	if kasseID == "" {
		return errors.New("audit query: --kasse is required")
	}
	if format != "csv" && format != "json" {
		return fmt.Errorf("audit query: --format %q: want csv or json", format)
	}
	f := audit.Filter{Type: typ, ActorID: actor, SubjectType: subjType, SubjectID: subj, Outcome: audit.Outcome(outcome)}
	if f.From, err = parseCLITime("from", from, false); err != nil {
		return err
	}
	if f.To, err = parseCLITime("to", to, true); err != nil {
		return err
	}
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := shipPending(ctx, a); err != nil {
		return err
	}
	if _, err := a.db.Kasse(ctx, kasseID); err != nil {
		return fmt.Errorf("audit query: Kasse %q: %w", kasseID, err)
	}
	svc := &audit.AuditorService{Events: a.events, Recorder: a.db.AuditRecorder()}
	// The command line acts as the operator of the Kasse; its query is
	// recorded like an auditor's.
	octx := audit.WithOrigin(ctx, audit.Origin{TenantID: kasseID, ActorID: "cli", ActorRole: audit.OperatorRole})
	scan, err := svc.Export(octx, format, f)
	var ie *audit.InputError
	if errors.As(err, &ie) {
		return fmt.Errorf("audit query: --%s: %s", ie.Field, ie.Detail)
	}
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(stdout, 64<<10)
	xw, err := audit.NewExportWriter(bw, map[string]string{"csv": "csv", "json": "ndjson"}[format])
	if err != nil {
		return err
	}
	n := 0
	err = scan(ctx, func(e audit.Event) error {
		n++
		return xw.Write(e)
	})
	if err != nil {
		_ = xw.Fail(err)
		_ = bw.Flush()
		return fmt.Errorf("audit query: broke off after %d events: %w", n, err)
	}
	if err := xw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func auditRetention(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var keep time.Duration
	cfg, _, err := parseConfig("audit retention", args, getenv, func(fs *flag.FlagSet) {
		fs.DurationVar(&keep, "outbox-keep", defaultOutboxKeep, "how long shipped events stay in the transactional outbox for re-shipping")
	})
	if err != nil {
		return err
	}
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	_, err = runRetention(ctx, a, stdout, keep)
	return err
}

// runRetention applies every Kasse's retention to the event store and
// purges shipped events older than keep from the outbox.
func runRetention(ctx context.Context, a *app, out io.Writer, keep time.Duration) ([]audit.RetentionReport, error) {
	store, ok := a.events.(audit.RetentionEventStore)
	if !ok {
		return nil, errors.New("audit retention: the event store does not support retention")
	}
	if err := shipPending(ctx, a); err != nil {
		return nil, err
	}
	kassen, err := a.db.Kassen(ctx)
	if err != nil {
		return nil, err
	}
	r := &audit.Retention{Events: store, Anchors: a.db, Recorder: a.db.AuditRecorder()}
	reports, deleted, err := r.Apply(ctx, kassen)
	for _, rep := range reports {
		fmt.Fprintf(out, "%s: security events %d days, business events %d days; chain starts after seq %d; %d redacted\n",
			rep.TenantID, int(rep.Policy.Security/(24*time.Hour)), int(rep.Policy.Business/(24*time.Hour)), rep.Anchor.Seq, rep.Redacted)
	}
	if err != nil {
		return reports, err
	}
	purged, err := a.db.PurgeShippedEvents(ctx, time.Now().Add(-keep))
	if err != nil {
		return reports, err
	}
	fmt.Fprintf(out, "%d expired events deleted from the event store, %d shipped events older than %s purged from the outbox\n", deleted, purged, keep)
	a.log.Info("audit retention applied", "kassen", len(reports), "deleted", deleted, "outbox_purged", purged)
	return reports, nil
}

func auditReship(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var kasseID, since string
	cfg, _, err := parseConfig("audit reship", args, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&kasseID, "kasse", "", "Kasse (tenant) id")
		fs.StringVar(&since, "since", "", "first instant (RFC 3339) or day (YYYY-MM-DD, UTC) to ship again")
	})
	if err != nil {
		return err
	}
	if kasseID == "" || since == "" {
		return errors.New("audit reship: --kasse and --since are required")
	}
	t, err := parseCLITime("since", since, false)
	if err != nil {
		return err
	}
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	n, err := a.db.RequeueEvents(ctx, kasseID, t)
	if err != nil {
		return err
	}
	if err := shipPending(ctx, a); err != nil {
		return fmt.Errorf("%d events queued again, but: %w", n, err)
	}
	fmt.Fprintf(stdout, "%d events of %s shipped again\n", n, kasseID)
	return nil
}
