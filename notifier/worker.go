package notifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"postbox/audit"
)

// Outbox is the transactional side of mail delivery (storage/sqldb). A claim
// moves due jobs to "sending" under a lease and a fresh token; every later
// mark must present the token, so a worker whose lease ran out cannot
// overwrite what the worker that took over did.
type Outbox interface {
	// ClaimMails takes up to c.Limit jobs that are due (pending and
	// next_attempt_at reached) or whose lease ran out while sending, counts
	// the attempt and leases them to c.Token for c.Lease.
	ClaimMails(ctx context.Context, c Claim) ([]Job, error)
	// MarkMailsSent records the server's acceptance of jobs claimed with
	// token, in one transaction, and returns how many it marked (fewer when
	// another worker took some over).
	MarkMailsSent(ctx context.Context, token string, ids []string) (int, error)
	// RetryMail puts the job back to pending, due after delay.
	RetryMail(ctx context.Context, id, token string, delay time.Duration, lastErr string) error
	// FailMail gives up on the job and records ev in the same transaction.
	FailMail(ctx context.Context, id, token, lastErr string, ev audit.Event) error
}

// Claim says which jobs a worker takes.
type Claim struct {
	Token   string
	Lease   time.Duration
	Limit   int
	Tenants []string // only these tenants' jobs; empty: all
}

// ErrLeaseLost is returned by the Outbox marks when another worker has
// taken the job over (the lease ran out).
var ErrLeaseLost = errors.New("mail job lease lost")

// DeliveryChecker can tell whether the server already has a mail with the
// job's Message-ID. It closes the gap "sent, but the worker crashed before
// recording it": a reclaimed job is asked about first. A real SMTP relay
// cannot be asked; the .eml directory and maildev's API can.
type DeliveryChecker interface {
	Delivered(ctx context.Context, m Mail) (bool, error)
}

// Worker sends queued notifications. Any number of workers (in any number
// of replicas) may run against one outbox: claims are exclusive.
type Worker struct {
	Outbox  Outbox
	Sender  Sender
	Checker DeliveryChecker // optional; defaults to Sender if it is one
	From    string

	MaxAttempts  int           // give up after this many attempts (default 10)
	RetryBase    time.Duration // first retry delay, doubled per attempt (default 30s)
	RetryMax     time.Duration // cap of the retry delay (default 1h)
	Lease        time.Duration // how long a claim is exclusive (default 2m); must exceed SendTimeout
	SendTimeout  time.Duration // one SMTP session (default 30s)
	Batch        int           // jobs per claim (default 50)
	Concurrency  int           // parallel SMTP sessions (default 4)
	PollInterval time.Duration // pause when nothing is due (default 1s)
	Tenants      []string      // serve only these tenants (empty: all)
	Logger       *slog.Logger

	wakeOnce sync.Once
	wake     chan struct{}
}

func (w *Worker) defaults() {
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = 10
	}
	if w.RetryBase <= 0 {
		w.RetryBase = 30 * time.Second
	}
	if w.RetryMax <= 0 {
		w.RetryMax = time.Hour
	}
	if w.SendTimeout <= 0 {
		w.SendTimeout = 30 * time.Second
	}
	if w.Lease <= 0 {
		w.Lease = 2 * time.Minute
	}
	if w.Lease < 2*w.SendTimeout {
		w.Lease = 2 * w.SendTimeout
	}
	if w.Batch <= 0 {
		w.Batch = 50
	}
	if w.Concurrency <= 0 {
		w.Concurrency = 4
	}
	if w.PollInterval <= 0 {
		w.PollInterval = time.Second
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Checker == nil {
		if c, ok := w.Sender.(DeliveryChecker); ok {
			w.Checker = c
		}
	}
	w.wakeOnce.Do(func() { w.wake = make(chan struct{}, 1) })
}

// Notify tells the worker that a job was just committed, so it does not
// wait for the next poll. Safe to call from any goroutine, never blocks.
func (w *Worker) Notify() {
	w.wakeOnce.Do(func() { w.wake = make(chan struct{}, 1) })
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. While the database is unreachable it waits
// with a growing pause; mails wait safely in the outbox.
func (w *Worker) Run(ctx context.Context) {
	w.defaults()
	pause := w.PollInterval
	for {
		n, err := w.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			w.Logger.Warn("mail outbox claim failed; retrying", "err", err, "pause", pause.String())
			pause = min(pause*2, 30*time.Second)
		case n == w.Batch:
			continue // more may be due right now
		default:
			pause = w.PollInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-time.After(pause):
		}
	}
}

// RunOnce claims one batch and delivers it; it returns how many jobs it
// handled. Sends already started finish even if ctx ends, so a shutdown
// does not leave a mail half recorded.
//
// Acceptances are recorded by one marker per batch right after each send,
// taking whatever is waiting in one transaction ("group commit"): alone
// that is one mail per transaction, so the window between the server's
// acceptance and its record stays one write long; while other writers hold
// the database (SQLite has one writer) the marks queue up and go in
// together instead of each waiting for the lock.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	w.defaults()
	token, err := newToken()
	if err != nil {
		return 0, err
	}
	jobs, err := w.Outbox.ClaimMails(ctx, Claim{Token: token, Lease: w.Lease, Limit: w.Batch, Tenants: w.Tenants})
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	work := context.WithoutCancel(ctx)
	sent := make(chan string, len(jobs))
	marked := make(chan struct{})
	go func() {
		defer close(marked)
		w.markSent(work, token, sent)
	}()
	sem := make(chan struct{}, w.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.deliver(work, j, sent)
		}()
	}
	wg.Wait()
	close(sent)
	<-marked
	return len(jobs), nil
}

// markSent records acceptances as they come, batching what queued up.
func (w *Worker) markSent(ctx context.Context, token string, sent <-chan string) {
	for id := range sent {
		ids := []string{id}
	more:
		for {
			select {
			case next, ok := <-sent:
				if !ok {
					break more
				}
				ids = append(ids, next)
			default:
				break more
			}
		}
		n, err := w.Outbox.MarkMailsSent(ctx, token, ids)
		switch {
		case err != nil:
			// The jobs stay "sending" and are reclaimed when their lease
			// ends; the reclaim asks the server first where it can.
			w.Logger.Error("could not record sent mails", "count", len(ids), "err", err)
		case n < len(ids):
			w.Logger.Warn("mail jobs taken over by another worker before they could be marked sent", "count", len(ids)-n)
		}
	}
}

func (w *Worker) deliver(ctx context.Context, j Job, sent chan<- string) {
	log := w.Logger.With("mail_job", j.ID, "attempt", j.Attempts)
	m, err := Render(j, w.From)
	if err != nil {
		w.giveUp(ctx, log, j, err, "template")
		return
	}
	if j.Reclaimed && w.Checker != nil {
		// The previous attempt ended without a result. If the server has
		// the mail already, record that instead of sending it twice.
		cctx, cancel := context.WithTimeout(ctx, w.SendTimeout)
		ok, err := w.Checker.Delivered(cctx, m)
		cancel()
		if err == nil && ok {
			log.Info("mail found at the server after an interrupted attempt; not sent again")
			sent <- j.ID
			return
		}
		if err != nil {
			log.Warn("could not ask the mail server about an interrupted attempt; sending again", "err", RedactError(err))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, w.SendTimeout)
	err = w.Sender.Send(sctx, m)
	cancel()
	if err == nil {
		sent <- j.ID
		return
	}
	if Permanent(err) {
		w.giveUp(ctx, log, j, err, "rejected")
		return
	}
	if j.Attempts >= w.MaxAttempts {
		w.giveUp(ctx, log, j, err, "attempts")
		return
	}
	delay := w.Backoff(j.Attempts)
	log.Info("mail not sent; will retry", "err", RedactError(err), "retry_in", delay.String())
	w.mark(log, "retry scheduled", w.Outbox.RetryMail(ctx, j.ID, j.ClaimToken, delay, RedactError(err)))
}

func (w *Worker) giveUp(ctx context.Context, log *slog.Logger, j Job, cause error, reason string) {
	details, _ := json.Marshal(map[string]any{"attempts": j.Attempts, "template": string(j.Template), "reason": reason})
	ev := audit.Event{
		TenantID: j.TenantID, ActorID: "notifier", ActorRole: "system",
		Type: "notifier.mail.failed", SubjectType: "mail", SubjectID: j.ID,
		Outcome: audit.OutcomeFailure, Details: string(details),
	}
	log.Warn("mail given up", "reason", reason, "err", RedactError(cause))
	w.mark(log, "marked failed", w.Outbox.FailMail(ctx, j.ID, j.ClaimToken, RedactError(cause), ev))
}

func (w *Worker) mark(log *slog.Logger, what string, err error) {
	switch {
	case err == nil:
		log.Debug("mail job " + what)
	case errors.Is(err, ErrLeaseLost):
		log.Warn("mail job taken over by another worker before it could be marked " + what)
	default:
		// The job stays "sending" and is reclaimed when its lease ends; the
		// reclaim asks the server first where it can.
		log.Error("could not record mail job result", "result", what, "err", err)
	}
}

// Backoff is the delay before the next attempt after attempt n (1-based):
// RetryBase·2^(n-1), capped at RetryMax, with "equal jitter" (between half
// and all of it), so many mails that failed together do not retry together.
func (w *Worker) Backoff(n int) time.Duration {
	w.defaults()
	d := w.RetryBase
	for i := 1; i < n && d < w.RetryMax; i++ {
		d *= 2
	}
	d = min(d, w.RetryMax)
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	j, err := rand.Int(rand.Reader, big.NewInt(half+1))
	if err != nil {
		return d
	}
	return time.Duration(half + j.Int64())
}

// Permanent reports whether retrying err is pointless: the server rejected
// the mail for good (5xx) or the job cannot be rendered.
func Permanent(err error) bool {
	if errors.Is(err, ErrTemplate) {
		return true
	}
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

var emailLike = regexp.MustCompile(`[^\s<>"'(),;:]+@[^\s<>"'(),;:]+`)

// RedactError shortens an error for logs and the outbox: mail servers quote
// the recipient address in rejections, which must not reach either.
func RedactError(err error) string {
	if err == nil {
		return ""
	}
	s := emailLike.ReplaceAllString(err.Error(), "<adresse>")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("claim token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
