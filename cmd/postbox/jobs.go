package main

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// jobLeases is what the periodic jobs need of the database (sqldb.Store).
type jobLeases interface {
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// periodic runs the periodic jobs (retention, upload maintenance, cleanups)
// so that each runs on one replica at a time: three replicas do not do the
// same work three times. A job's lease in the database (job_leases) is
// renewed by its holder every period and lasts one and a half periods, so
// the holder keeps it; when the holder dies the lease expires and another
// replica takes the job over at its next period. A clean stop releases it
// at once (a rolling update does not wait for the expiry). On SQLite there
// is one process anyway and the lease is always its own.
type periodic struct {
	leases jobLeases
	holder string
	log    *slog.Logger
}

// newPeriodic names this process as a lease holder by its host (the pod)
// and listen address: unique among live processes (two cannot listen on
// one address), and a process restarted in place (a crash, the kill tests)
// takes its own leases back at once instead of waiting for their expiry.
func newPeriodic(leases jobLeases, listen string, log *slog.Logger) *periodic {
	host, _ := os.Hostname()
	return &periodic{leases: leases, holder: host + "/" + listen, log: log}
}

// run calls job after first and then every period while this replica holds
// the job's lease, until ctx ends. A database that cannot be asked skips
// the run (the job would need it anyway); the next period asks again.
func (p *periodic) run(ctx context.Context, name string, first, every time.Duration, job func(ctx context.Context)) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := p.leases.ReleaseLease(rctx, name, p.holder); err != nil {
			p.log.Warn("periodic job: lease not released; another replica takes over after it expired", "job", name, "err", err)
		}
	}()
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		mine, err := p.leases.TryLease(lctx, name, p.holder, every+every/2)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.Warn("periodic job: lease not checked; skipped this period", "job", name, "err", err)
		}
		if mine {
			job(ctx)
		}
		timer.Reset(every)
	}
}
