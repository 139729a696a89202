package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"postbox/audit"
	"postbox/web"
)

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var demo bool
	cfg, _, err := parseConfig("serve", args, getenv, func(fs *flag.FlagSet) {
		fs.BoolVar(&demo, "demo", false, "create a demo Kasse with one account per role and print their logins and an Einmal-PIN")
	})
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log)
	// Bind first: a taken port is a start-up error, not a late one.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return &ConfigError{Env: "POSTBOX_LISTEN", Flag: "listen", Value: cfg.Listen, Problem: err.Error()}
	}
	defer ln.Close()
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if a.auth, err = newAuthService(a); err != nil {
		return err
	}

	if demo {
		d, err := seedDemo(ctx, a)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		d.print(stdout, cfg.BaseURL)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerOutboxMetrics(reg, a)
	srv := web.New(web.Options{Checks: a.checks, Registry: reg, Logger: log, HSTS: strings.HasPrefix(cfg.BaseURL, "https://"), Unavailable: dependencyDown, Full: storageFull})
	srv.UseAuditOrigin(audit.NewClientHasher(a.keys.clientAddr))
	srv.UseSessions(a.auth, web.SessionOptions{Secure: cfg.SecureCookies}) // before every route that needs a login
	desk := mountPINIntake(srv, a)                                         // before the upload routes: logs PIN sessions in
	uploads := mountUploads(srv, a, desk)                                  // tus under /api/uploads, behind the PIN session
	pf := mountPostfach(srv, a)                                            // Postfach API; its notifier worker and retention start below
	if _, err := web.MountUI(srv, web.UIOptions{Kassen: a.db, Auth: a.auth, PIN: desk, Mailbox: pf.svc,
		MailboxMaxFiles: cfg.PostfachMaxAttachments, Vorgaenge: &audit.VorgangService{Store: a.db.Vorgaenge()}, People: a.db,
		Audit: &audit.AuditorService{Events: a.events, Recorder: a.db.AuditRecorder()}, Logger: log}); err != nil {
		return err
	}
	web.MountAuth(srv.App(), a.auth)
	aw := mountAudit(srv, a) // Vorgänge and auditor API

	workCtx, stopWork := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	jobs := newPeriodic(a.db, ln.Addr().String(), log) // each periodic job on one replica at a time
	aw.start(workCtx, &workers, jobs)                  // event shipper and audit retention
	workers.Add(1)
	go func() { defer workers.Done(); runUploadMaintenance(workCtx, jobs, uploads, log) }()
	workers.Add(1)
	go func() { defer workers.Done(); runAuthCleanup(workCtx, jobs, a) }()
	pf.start(workCtx, &workers, jobs)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("postbox listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL, "backends", backendNames(a))

	select {
	case err := <-serveErr:
		stopWork()
		workers.Wait()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	stopWork()
	workers.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func backendNames(a *app) []string {
	names := make([]string, len(a.checks))
	for i, c := range a.checks {
		names[i] = c.Name
	}
	return names
}

// registerOutboxMetrics exposes how much waits in the outboxes; a growing
// number means ClickHouse or SMTP is down.
func registerOutboxMetrics(reg *prometheus.Registry, a *app) {
	depth := func(which string) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			ev, mails, err := a.db.OutboxDepth(ctx)
			if err != nil {
				return -1
			}
			if which == "events" {
				return float64(ev)
			}
			return float64(mails)
		}
	}
	for _, which := range []string{"events", "mails"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "postbox_outbox_depth", Help: "Entries waiting in an outbox (audit events to ship, mails to send).",
			ConstLabels: prometheus.Labels{"outbox": which},
		}, depth(which)))
	}
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, _, err := parseConfig("migrate", args, getenv, nil)
	if err != nil {
		return err
	}
	// openApp applies the SQL migrations and the ClickHouse schema.
	a, err := openApp(ctx, cfg, newLogger(io.Discard, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema at version %d (%s)\n", v, a.db.Dialect())
	return nil
}
