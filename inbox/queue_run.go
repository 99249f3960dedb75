package inbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/internal/lifecycle"
	"github.com/switchyard-go/switchyard/internal/sqlqueue"
	"github.com/switchyard-go/switchyard/pubsub"
)

// Run handles stored records until ctx is done or Close is called, and
// deletes old ones every minute (see [Queue.Clean]). When stopped it
// claims no more records, waits for the batch in hand (see [Queue.Close]),
// records its outcomes and returns nil.
// Handlers are not cancelled by ctx: their context carries ctx's values
// and ends at their Timeout. Database errors are logged and retried;
// they do not stop it. Several Run calls on one queue may run at once.
func (q *Queue) Run(ctx context.Context) error {
	if !q.gate.Enter() {
		return pubsub.ErrClosed
	}
	defer q.gate.Leave()
	var lastClean time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.gate.Done():
			return nil
		default:
		}
		n, err := q.step(ctx)
		if err != nil && ctx.Err() == nil {
			q.cfg.Logger.Error("inbox: queue step", "queue", q.cfg.Name, "err", err)
		}
		if time.Since(lastClean) > time.Minute {
			if _, err := q.Clean(ctx); err != nil && ctx.Err() == nil {
				q.cfg.Logger.Error("inbox: queue retention", "queue", q.cfg.Name, "err", err)
			}
			lastClean = time.Now()
		}
		if n > 0 && err == nil {
			continue // more may be waiting
		}
		t := time.NewTimer(q.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-q.gate.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Step claims one batch of due records, handles them (up to Concurrency
// at once), then records their outcomes: the done ones in one statement,
// then each failed try, calling OnError and OnDead. It returns how many
// records it claimed, and the errors of the database, not those of the
// handlers (see OnError). Run calls it in a loop; tests and callers with
// their own scheduling may call it directly.
func (q *Queue) Step(ctx context.Context) (int, error) {
	if !q.gate.Enter() {
		return 0, pubsub.ErrClosed
	}
	defer q.gate.Leave()
	return q.step(ctx)
}

// Close stops Run and Step and waits for them, and so for the batch in
// hand, whose handlers are each bounded by Timeout plus its grace (the
// batch by less than Lease). It is safe to call more than once; Store
// keeps working after it.
func (q *Queue) Close() error {
	q.gate.Close()
	return nil
}

func (q *Queue) step(ctx context.Context) (int, error) {
	sq := q.sq.Load()
	if sq == nil {
		return 0, nil
	}
	rows, err := sqlqueue.Claim(ctx, sq, q.cfg.BatchSize, scanClaimed)
	if err != nil || len(rows) == 0 {
		if err != nil {
			err = fmt.Errorf("inbox: %w", err)
		}
		return 0, err
	}
	hctx := context.WithoutCancel(ctx)
	sem := make(chan struct{}, q.cfg.Concurrency)
	var wg sync.WaitGroup
	herrs := make([]error, len(rows))
	for i := range rows {
		r := &rows[i].Value
		r.Key, r.Event.ID, r.Tries = rows[i].Key[0].(string), pubsub.ID(rows[i].Key[1].(string)), rows[i].Tries
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			herrs[i] = q.call(hctx, *r)
		})
	}
	wg.Wait()
	// The outcomes are recorded together: the batch's done records in one
	// statement, then each failed try.
	var done [][]any
	for i, rw := range rows {
		if herrs[i] == nil {
			done = append(done, rw.Key)
		}
	}
	var errs []error
	if n, err := sq.Done(hctx, done); err != nil {
		errs = append(errs, fmt.Errorf("inbox: %d records were handled but not recorded (they will be handled again): %w", len(done), err))
	} else if n < len(done) {
		q.cfg.Logger.Warn("inbox: records were handled after their lease ended; another queue may handle them again",
			"queue", q.cfg.Name, "records", len(done)-n)
	}
	for i, rw := range rows {
		if herrs[i] != nil {
			if err := q.failed(hctx, sq, rw, herrs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return len(rows), errors.Join(errs...)
}

// failed records a failed try of a claimed record and calls the
// callbacks.
func (q *Queue) failed(ctx context.Context, sq *sqlqueue.Queue, rw sqlqueue.Row[Record], herr error) error {
	r := rw.Value
	if errors.Is(herr, pubsub.ErrPermanent) {
		last := *sq // this try is the last
		last.MaxTries = 1
		sq = &last
	}
	dead, err := sq.Failed(ctx, rw.Key, rw.Tries, time.Now(), herr)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if q.cfg.OnError == nil && q.cfg.OnDead == nil && !dead {
		return nil
	}
	after, err := q.Record(ctx, r.Key, r.Event.ID)
	if err != nil { // what the record must be now, but for its next try
		after = r
		after.Tries, after.LastError, after.NextAttempt = r.Tries+1, sqlqueue.Truncate(herr.Error(), 1000), time.Time{}
		if dead {
			after.State = RecordDead
		}
	}
	if q.cfg.OnError != nil {
		q.cfg.OnError(ctx, after, herr)
	}
	if dead {
		q.cfg.Logger.Error("inbox: record dead after its last try", "queue", q.cfg.Name, "key", r.Key,
			"event_id", r.Event.ID, "event_name", r.Event.Name, "tries", after.Tries, "err", herr)
		if q.cfg.OnDead != nil {
			q.cfg.OnDead(ctx, after, herr)
		}
	}
	return nil
}

// call runs the handler of r under Recover and Timeout, abandoning it
// when it has not returned a grace period after its deadline. The event
// it is given has Meta.Attempts = r.Tries.
func (q *Queue) call(ctx context.Context, r Record) error {
	q.mu.RLock()
	h := q.byKey[r.Key]
	q.mu.RUnlock()
	ev := r.Event
	ev.Meta.Attempts = r.Tries
	if h == nil {
		return fmt.Errorf("inbox: no handler is registered for %q", ev.Name)
	}
	done := make(chan error, 1)
	go func() { done <- pubsub.Timeout(q.cfg.Timeout)(pubsub.Recover(h))(ctx, ev) }()
	t := time.NewTimer(q.cfg.Timeout + lifecycle.HandlerGrace(q.cfg.Timeout))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return lifecycle.HungError("inbox", q.cfg.Timeout)
	}
}

// Clean deletes this queue's done records past Keep and, when KeepDead
// is set, its dead records past KeepDead, up to 10,000 of each; it never
// deletes a pending record, nor records of keys not registered on it. It
// returns how many it deleted. Run calls it every minute.
func (q *Queue) Clean(ctx context.Context) (int, error) {
	sq := q.sq.Load()
	if sq == nil {
		return 0, nil
	}
	n, err := sq.Clean(ctx, q.cfg.Keep, q.cfg.KeepDead)
	if err != nil {
		return n, fmt.Errorf("inbox: %w", err)
	}
	return n, nil
}
