package webhook_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// adv6Publisher keeps what is emitted through it.
type adv6Publisher struct {
	mu  sync.Mutex
	evs []pubsub.Event
}

func (p *adv6Publisher) Emit(_ context.Context, evs ...pubsub.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, evs...)
	return nil
}

func (p *adv6Publisher) Close() error { return nil }

// recovered returns the events emitted, unwrapped, for subscription sub.
func (p *adv6Publisher) recovered(t *testing.T, sub string) []pubsub.ID {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pubsub.ID
	for _, rev := range p.evs {
		s, ids, ok := webhook.UnwrapRecovery(rev)
		if !ok || s != sub {
			t.Errorf("recovery emitted %s %s (sub %q, a recovery: %v)", rev.Name, rev.ID, s, ok)
		}
		out = append(out, ids...)
	}
	return out
}

// TestAdv6RecoverReportsWhatItFound records by hand every case Recover
// tells apart, in a memory log and in Redis: dead letters and skips are
// scheduled once, by creation time; a pending retry is in progress; a
// delivered, a dry-run and another subscription's event are left alone;
// an event past retention is expired; the recovered dead letters, and only
// they, are removed; a second recovery schedules nothing.
func TestAdv6RecoverReportsWhatItFound(t *testing.T) {
	for _, l := range adv6Logs(t) {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			base := time.Now().Add(-time.Minute).UTC()
			ev := func(name string, n int) pubsub.Event {
				return pubsub.Event{ID: pubsub.ID(name), Name: "t", Payload: []byte(`{}`), Meta: pubsub.Meta{CreatedAtUTC: base.Add(time.Duration(n) * time.Second)}}
			}
			at := func(e pubsub.Event, sub string, n int, o webhook.Outcome) webhook.Attempt {
				return webhook.Attempt{EventID: e.ID, EventName: e.Name, SubscriptionID: sub, Attempt: n, Outcome: o, At: time.Now()}
			}
			dead, skipped, retried, pending, delivered, dry, gone, other :=
				ev("dead", 3), ev("skip", 1), ev("retried", 2), ev("pending", 0), ev("delivered", 4), ev("dry", 5), ev("gone", 6), ev("other", 7)
			since := time.Now()
			batches := []webhook.AttemptBatch{
				{Events: []pubsub.Event{dead, skipped, retried, pending, delivered, dry, other}, Attempts: []webhook.Attempt{
					at(dead, "s", 1, webhook.DeadLettered), at(skipped, "s", 0, webhook.Skipped),
					at(retried, "s", 1, webhook.Failed), at(pending, "s", 1, webhook.Failed),
					at(delivered, "s", 1, webhook.DeadLettered), at(dry, "s", 0, webhook.DryRun), at(other, "o", 1, webhook.DeadLettered)}},
				{Attempts: []webhook.Attempt{at(retried, "s", 2, webhook.DeadLettered), at(delivered, "s", 1, webhook.Delivered),
					at(gone, "s", 3, webhook.DeadLettered)}}, // gone: its event is past retention
			}
			for _, b := range batches {
				if err := l.log.Record(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			dls := &webhook.MemoryDeadLetters{}
			for _, dl := range []webhook.DeadLetter{{SubscriptionID: "s", Kind: webhook.KindExhausted, Event: dead},
				{SubscriptionID: "s", Kind: webhook.KindExhausted, Event: retried}, {SubscriptionID: "o", Kind: webhook.KindGone, Event: dead},
				{SubscriptionID: "s", Kind: webhook.KindGone, Event: other}} {
				if err := dls.Add(ctx, dl); err != nil {
					t.Fatal(err)
				}
			}
			pub := &adv6Publisher{}
			r := webhook.Recovery{Log: l.log, DeadLetters: dls, Publisher: pub}
			rep, err := webhook.Recover(ctx, r, "s", since.Add(-time.Second), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if want := (webhook.RecoverReport{Scheduled: 3, InProgress: 1, Expired: 1}); rep != want {
				t.Errorf("Recover = %+v, want %+v (a dry run has no retry running)", rep, want)
			}
			if got, want := fmt.Sprint(pub.recovered(t, "s")), "[skip retried dead]"; got != want {
				t.Errorf("emitted %s, want %s, by creation time", got, want)
			}
			var left []string
			for _, dl := range allDeadLetters(t, dls) {
				left = append(left, dl.SubscriptionID+"/"+string(dl.Event.ID))
			}
			if fmt.Sprint(left) != "[o/dead s/other]" {
				t.Errorf("dead letters left: %v", left)
			}
			rep, err = webhook.Recover(ctx, r, "s", since.Add(-time.Second), time.Time{})
			if err != nil || rep.Scheduled != 0 {
				t.Errorf("a second recovery: %+v, %v; want nothing scheduled", rep, err)
			}
			if n := len(pub.recovered(t, "s")); n != 3 {
				t.Errorf("%d emitted after two recoveries, want 3", n)
			}
			// The window's edges: an until before every attempt finds nothing.
			rep, err = webhook.Recover(ctx, r, "s", since.Add(-time.Hour), since.Add(-time.Second))
			if err != nil || rep != (webhook.RecoverReport{}) {
				t.Errorf("an empty window: %+v, %v", rep, err)
			}
		})
	}
}

// TestAdv6RecoverTenThousand: a window of 10,000 dead-lettered events
// (20,000 attempts, other subscriptions' among them) is recovered each
// once, in creation order, on Redis.
func TestAdv6RecoverTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 events")
	}
	const n = 10000
	ctx := context.Background()
	log, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: startRedis(t), Prefix: "{ev}:webhook:log"})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).UTC()
	since := time.Now()
	for start := 0; start < n; start += 500 {
		var b webhook.AttemptBatch
		for i := start; i < start+500; i++ {
			// Created in an order other than recorded.
			e := pubsub.Event{ID: pubsub.ID(fmt.Sprintf("e%05d", i)), Name: "t", Payload: []byte(`{}`),
				Meta: pubsub.Meta{CreatedAtUTC: base.Add(time.Duration((i*7919)%n) * time.Millisecond)}}
			b.Events = append(b.Events, e)
			b.Attempts = append(b.Attempts, webhook.Attempt{EventID: e.ID, EventName: "t", SubscriptionID: "s", Attempt: 1, Outcome: webhook.DeadLettered},
				webhook.Attempt{EventID: e.ID, EventName: "t", SubscriptionID: "other", Attempt: 1, Outcome: webhook.DeadLettered})
		}
		if err := log.Record(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	pub := &adv6Publisher{}
	start := time.Now()
	rep, err := webhook.Recover(ctx, webhook.Recovery{Log: log, Publisher: pub}, "s", since.Add(-time.Second), time.Time{})
	if err != nil || rep != (webhook.RecoverReport{Scheduled: n}) {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	t.Logf("recovered %d in %s", n, time.Since(start))
	got := pub.recovered(t, "s")
	seen := map[pubsub.ID]bool{}
	for i, id := range got {
		var k int
		fmt.Sscanf(string(id), "e%05d", &k)
		if seen[id] {
			t.Fatalf("%s scheduled twice", id)
		}
		seen[id] = true
		if (k*7919)%n != i {
			t.Fatalf("position %d: %s, created at +%dms", i, id, (k*7919)%n)
		}
	}
	if len(seen) != n {
		t.Errorf("%d scheduled, want %d", len(seen), n)
	}
}

// TestAdv6RecoverAnEventFannedOutWide: the event's attempts for other
// subscriptions, more than a query reads at once, came after its one
// dead-lettered attempt for the subscription recovered: it is still
// recovered, not passed over.
func TestAdv6RecoverAnEventFannedOutWide(t *testing.T) {
	log, err := webhook.NewRedisAttemptLog(webhook.RedisAttemptLogConfig{Client: startRedis(t), Prefix: "{ev}:webhook:log"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev := pubsub.Event{ID: "wide", Name: "t", Payload: []byte(`{}`), Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC()}}
	since := time.Now().Add(-time.Second)
	if err := log.Record(ctx, webhook.AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []webhook.Attempt{
		{EventID: ev.ID, EventName: "t", SubscriptionID: "s", Attempt: 1, Outcome: webhook.DeadLettered, Status: 410}}}); err != nil {
		t.Fatal(err)
	}
	var b webhook.AttemptBatch
	for i := 0; i < 6000; i++ {
		b.Attempts = append(b.Attempts, webhook.Attempt{EventID: ev.ID, EventName: "t", SubscriptionID: fmt.Sprint("other", i), Attempt: 1, Outcome: webhook.Delivered})
	}
	if err := log.Record(ctx, b); err != nil {
		t.Fatal(err)
	}
	pub := &adv6Publisher{}
	rep, err := webhook.Recover(ctx, webhook.Recovery{Log: log, Publisher: pub}, "s", since, time.Time{})
	if err != nil || rep != (webhook.RecoverReport{Scheduled: 1}) {
		t.Errorf("Recover = %+v, %v; want the event scheduled", rep, err)
	}
}

// adv6FailingAgain is a publisher whose deliveries are dead-lettered again
// the moment they are emitted, as a bridge does with an endpoint that
// answers 410 at once.
type adv6FailingAgain struct {
	adv6Publisher
	store webhook.DeadLetterStore
}

func (p *adv6FailingAgain) Emit(ctx context.Context, evs ...pubsub.Event) error {
	for _, rev := range evs {
		sub, ids, _ := webhook.UnwrapRecovery(rev)
		for _, id := range ids {
			ev := pubsub.Event{ID: id, Name: "t", Payload: []byte(`{}`)}
			if err := p.store.Add(ctx, webhook.DeadLetter{SubscriptionID: sub, Kind: webhook.KindGone, Attempts: 1, Event: ev, LastError: "again"}); err != nil {
				return err
			}
		}
	}
	return p.adv6Publisher.Emit(ctx, evs...)
}

// TestAdv6RecoverKeepsTheDeadLettersOfItsOwnDeliveries: Recover removes
// the dead letters it recovered, not those its own deliveries made again
// while it ran.
func TestAdv6RecoverKeepsTheDeadLettersOfItsOwnDeliveries(t *testing.T) {
	ctx := context.Background()
	log, _ := webhook.NewMemoryAttemptLog(webhook.MemoryAttemptLogConfig{})
	ev := pubsub.Event{ID: "e", Name: "t", Payload: []byte(`{}`), Meta: pubsub.Meta{CreatedAtUTC: time.Now().UTC()}}
	since := time.Now().Add(-time.Second)
	if err := log.Record(ctx, webhook.AttemptBatch{Events: []pubsub.Event{ev}, Attempts: []webhook.Attempt{
		{EventID: ev.ID, EventName: "t", SubscriptionID: "s", Attempt: 1, Outcome: webhook.DeadLettered, Status: 410}}}); err != nil {
		t.Fatal(err)
	}
	dls := &webhook.MemoryDeadLetters{}
	if err := dls.Add(ctx, webhook.DeadLetter{SubscriptionID: "s", Kind: webhook.KindGone, Attempts: 1, Event: ev, LastError: "first"}); err != nil {
		t.Fatal(err)
	}
	pub := &adv6FailingAgain{store: dls}
	rep, err := webhook.Recover(ctx, webhook.Recovery{Log: log, DeadLetters: dls, Publisher: pub}, "s", since, time.Time{})
	if err != nil || rep.Scheduled != 1 {
		t.Fatalf("Recover = %+v, %v", rep, err)
	}
	left := allDeadLetters(t, dls)
	if len(left) != 1 || left[0].LastError != "again" {
		t.Errorf("dead letters after recovery: %+v; want the one its delivery made, and only it", left)
	}
}
