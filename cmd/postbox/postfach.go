package main

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/intake"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/web"
)

// postfach is the wired Postfach: its API, the notifier worker that sends
// the content-free mails and the daily retention.
type postfach struct {
	svc    *mailbox.Service
	worker *notifier.Worker
}

// postfachBlobs gives the Postfach the blob store (intake imports mailbox,
// so mailbox cannot name intake's BlobStore itself).
type postfachBlobs struct{ intake.BlobStore }

func (b postfachBlobs) PutStream(ctx context.Context, key string, r io.Reader) error {
	_, err := b.Put(ctx, key, r, -1)
	return err
}

func (b postfachBlobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.Get(ctx, key)
	return rc, err
}

// mountPostfach serves the Postfach API; start runs its workers.
func mountPostfach(srv *web.Server, a *app) *postfach {
	w := &notifier.Worker{
		Outbox: a.db, Sender: a.mail, From: a.cfg.MailFrom,
		MaxAttempts: a.cfg.MailMaxAttempts, RetryBase: a.cfg.MailRetryBase, RetryMax: a.cfg.MailRetryMax,
		Logger: a.log,
	}
	svc := &mailbox.Service{
		Store: a.db.Mailbox(), Blobs: postfachBlobs{a.blobs}, Check: intake.CheckContent,
		Limits:       mailbox.Limits{MaxBodyRunes: a.cfg.PostfachMaxText, MaxAttachments: a.cfg.PostfachMaxAttachments},
		NotifyWindow: a.cfg.MailCoalesceWindow,
		Notified:     w.Notify, // a committed notification wakes the local worker
		Logger:       a.log,
	}
	hasher := audit.NewClientHasher(a.keys.clientAddr)
	web.MountPostfach(srv.App(), svc, web.PostfachOptions{
		Logger:     a.log,
		ClientHash: func(c *fiber.Ctx) string { return hasher.Hash(c.IP()) },
	})
	return &postfach{svc: svc, worker: w}
}

// start runs the notifier worker and the daily retention until ctx ends.
func (p *postfach) start(ctx context.Context, wg *sync.WaitGroup, jobs *periodic) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.worker.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		jobs.run(ctx, "postfach-retention", 0, 24*time.Hour, func(ctx context.Context) {
			rep, err := p.svc.RunRetention(ctx)
			if err != nil && ctx.Err() == nil {
				jobs.log.Error("postfach retention failed; next run retries", "err", err)
			} else if err == nil {
				jobs.log.Info("postfach retention done", "messages", rep.Messages, "attachments", rep.Attachments,
					"threads", rep.Threads, "uploads", rep.Uploads, "blobs", rep.Blobs, "mail_jobs", rep.MailJobs)
			}
		})
	}()
}
