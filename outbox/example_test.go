package outbox_test

import (
	"context"
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite"

	"github.com/switchyard-go/switchyard/outbox"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/pubsubtest"
)

// An order and its event are written in one transaction; the relay then
// publishes the event (here to a recorder standing in for Redis).
func Example() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:example?mode=memory&cache=shared")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
		panic(err)
	}
	_, _ = db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)`)

	tx, _ := db.BeginTx(ctx, nil)
	_, _ = tx.ExecContext(ctx, `INSERT INTO orders (id, total) VALUES (7, 990)`)
	if err := outbox.Write(ctx, tx, pubsub.NewEvent(ctx, "order.created", []byte(`{"order_id":7}`))); err != nil {
		panic(err)
	}
	if err := tx.Commit(); err != nil {
		panic(err)
	}

	published := pubsubtest.NewRecorder()
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: db, Dialect: outbox.SQLite, Publisher: published})
	if err != nil {
		panic(err)
	}
	n, err := relay.Step(ctx) // Run does this in a loop
	fmt.Println(n, err)
	ev := published.Events()[0]
	fmt.Println(ev.Name, string(ev.Payload))
	// Output:
	// 1 <nil>
	// order.created {"order_id":7}
}

// Events of one order carry its ID as their ordering key: relays publish
// them in the order their transactions committed.
func ExampleWriteOrdered() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:example-ordered?mode=memory&cache=shared")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
		panic(err)
	}
	for _, name := range []pubsub.Name{"order.created", "order.paid", "order.shipped"} {
		tx, _ := db.BeginTx(ctx, nil)
		if err := outbox.WriteOrdered(ctx, tx, "order-7", pubsub.NewEvent(ctx, name, []byte(`{"order_id":7}`))); err != nil {
			panic(err)
		}
		if err := tx.Commit(); err != nil {
			panic(err)
		}
	}

	published := pubsubtest.NewRecorder()
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: db, Publisher: published}) // the dialect is detected
	if err != nil {
		panic(err)
	}
	for {
		if n, err := relay.Step(ctx); n == 0 || err != nil {
			break
		}
	}
	for _, ev := range published.Events() {
		fmt.Println(ev.Name)
	}
	// Output:
	// order.created
	// order.paid
	// order.shipped
}
