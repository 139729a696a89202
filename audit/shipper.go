package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Outbox is the transactional side of event shipping.
type Outbox interface {
	PendingEvents(ctx context.Context, limit int) ([]Event, error)
	MarkEventsShipped(ctx context.Context, ids []string) error
}

// Shipper moves events from the outbox to the event store. It is
// at-least-once: a crash between Append and MarkEventsShipped appends the
// batch again, which the store's dedupe by event id absorbs.
type Shipper struct {
	Outbox   Outbox
	Store    EventStore
	Batch    int           // events per Append; ClickHouse likes thousands
	Interval time.Duration // pause when the outbox is empty
	Logger   *slog.Logger
}

// ShipOnce ships up to one batch and reports how many events it shipped.
func (s *Shipper) ShipOnce(ctx context.Context) (int, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = 5000
	}
	events, err := s.Outbox.PendingEvents(ctx, batch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	if err := s.Store.Append(ctx, events); err != nil {
		return 0, fmt.Errorf("append %d events: %w", len(events), err)
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	if err := s.Outbox.MarkEventsShipped(ctx, ids); err != nil {
		return 0, fmt.Errorf("mark %d events shipped: %w", len(events), err)
	}
	return len(events), nil
}

// Run ships until ctx ends. While the store is down it retries with a
// growing pause (up to 30 s); events wait safely in the outbox meanwhile.
func (s *Shipper) Run(ctx context.Context) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	backoff := interval
	for {
		n, err := s.ShipOnce(ctx)
		wait := interval
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("audit event shipping failed, will retry", "err", err, "retry_in", backoff.String())
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		case n > 0:
			backoff, wait = interval, 0 // more may be waiting
		default:
			backoff = interval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
