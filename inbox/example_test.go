package inbox_test

import (
	"context"
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/pubsub"
)

// A handler behind the inbox runs once per event, however often the event
// is delivered.
func ExampleMiddleware() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:inbox-example?mode=memory&cache=shared")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store := inbox.SQLStore{DB: db}
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	charge := inbox.Middleware(store, "billing.charge", inbox.Options{})(func(ctx context.Context, ev pubsub.Event) error {
		fmt.Println("charging for", ev.ID)
		return nil
	})
	ev := pubsub.Event{ID: "evt-1", Name: "order.created"}
	for range 3 { // delivered three times
		if err := charge(ctx, ev); err != nil {
			panic(err)
		}
	}
	// Output:
	// charging for evt-1
}

// The stored inbox: the broker's handler only stores the event, which the
// broker then acknowledges; a worker handles it afterwards, trying again
// after a failure.
func ExampleQueue() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:inbox-queue-example?mode=memory&cache=shared")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection to the shared in-memory database
	store := inbox.SQLStore{DB: db}
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	q, err := inbox.NewQueue(inbox.QueueConfig{Store: store, Backoff: pubsub.ConstantBackoff(0)})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	declined := true
	if err := q.Register("order.created", "billing.charge", func(ctx context.Context, ev pubsub.Event) error {
		fmt.Println("charging for", ev.ID, "attempt", ev.Meta.Attempts)
		if declined {
			declined = false
			return fmt.Errorf("card declined")
		}
		return nil
	}); err != nil {
		panic(err)
	}
	// In a service: go sub.Consume(ctx, q.Store, nil); go q.Run(ctx).
	ev := pubsub.Event{ID: "evt-1", Name: "order.created"}
	for range 2 { // delivered twice, stored once
		if err := q.Store(ctx, ev); err != nil {
			panic(err)
		}
	}
	for range 3 { // what Run does in a loop
		if _, err := q.Step(ctx); err != nil {
			panic(err)
		}
	}
	r, err := q.Record(ctx, "billing.charge", "evt-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(r.State, "after", r.Tries, "failed try:", r.LastError)
	// Output:
	// charging for evt-1 attempt 0
	// charging for evt-1 attempt 1
	// done after 1 failed try: card declined
}

// A transactional handler's writes commit with the inbox's done mark, so
// its effect happens once per event even if the process dies between
// the two.
func ExampleTransactional() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:inbox-tx-example?mode=memory&cache=shared")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store := inbox.SQLStore{DB: db}
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE charges (order_id TEXT NOT NULL)`); err != nil {
		panic(err)
	}
	charge := inbox.Transactional(store, "billing.charge", inbox.Options{}, func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO charges (order_id) VALUES ($1)`, string(ev.Payload))
		return err
	})
	ev := pubsub.Event{ID: "evt-1", Name: "order.created", Payload: []byte("order-42")}
	for range 3 { // delivered three times
		if err := charge(ctx, ev); err != nil {
			panic(err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM charges`).Scan(&n); err != nil {
		panic(err)
	}
	fmt.Println("charges:", n)
	// Output:
	// charges: 1
}
