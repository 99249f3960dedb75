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
