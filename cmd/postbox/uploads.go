package main

import (
	"context"
	"log/slog"
	"time"

	"postbox/intake"
	"postbox/web"
)

// uploadMaintenanceInterval is how often expired uploads are removed and
// stalled ones (a replica died while assembling, the scanner was down)
// are finished. One replica at a time runs it (periodic); the upload
// leases keep it apart from the requests.
const uploadMaintenanceInterval = time.Minute

// mountUploads serves the tus endpoint behind the PIN session middleware
// the desk installed for it.
func mountUploads(srv *web.Server, a *app, desk *web.PINIntake) *intake.TusHandler {
	h := intake.NewTusHandler(intake.TusConfig{
		Store:       a.db,
		Blobs:       a.blobs,
		Scanner:     a.scanner(),
		BasePath:    web.TusPath + "/",
		Logger:      a.log,
		Unavailable: dependencyDown,
		Space:       a.uploadSpace(),
		Full:        storageFull,
	})
	web.MountTus(srv.App(), h, web.TusOptions{ClientHash: desk.ClientHash})
	return h
}

// scanner is the virus scanner of uploads; nil when none is configured:
// completed uploads are then released with scan status "not_scanned".
func (a *app) scanner() intake.Scanner {
	if a.cfg.ClamdAddr == "" {
		return nil
	}
	return &intake.Clamd{Addr: a.cfg.ClamdAddr}
}

// runUploadMaintenance calls the upload engine's periodic work until ctx ends.
func runUploadMaintenance(ctx context.Context, jobs *periodic, h *intake.TusHandler, log *slog.Logger) {
	jobs.run(ctx, "upload-maintenance", 0, uploadMaintenanceInterval, func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if _, err := h.RecoverStalled(rctx); err != nil && ctx.Err() == nil {
			log.Warn("upload maintenance: recover stalled uploads", "err", err)
		}
		if _, err := h.CleanupExpired(rctx); err != nil && ctx.Err() == nil {
			log.Warn("upload maintenance: remove expired uploads", "err", err)
		}
	})
}
