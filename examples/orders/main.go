// Command orders is an example service built on switchyard's reliable
// path from a database change to a webhook:
//
//	POST /orders  →  an order row and an outbox row, in one SQLite transaction
//	              →  the outbox relay publishes the event to the Redis stream "events"
//	              →  a billing consumer writes a charge row once per order: the
//	                 transactional inbox commits it with the event's done mark
//	              →  webhook-bridge, reading the same stream, delivers it as a signed webhook
//
// Run it beside a Redis, the bridge and a receiver:
//
//	WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw go run ./examples/receiver
//	go run ./examples/orders
//	go run ./cmd/webhook-bridge --config examples/orders/bridge.yaml
//	curl -s localhost:8090/orders -d '{"total": 990}'
//
// Each flag has an environment variable and a default: -redis
// (ORDERS_REDIS, 127.0.0.1:6379), -listen (ORDERS_LISTEN, 127.0.0.1:8090)
// and -db (ORDERS_DB, orders.db in the OS temporary directory, so that a
// run leaves no database files in the working tree). The bridge's config
// reads REDIS_URL, BRIDGE_LISTEN and RECEIVER_URL the same way.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/switchyard-go/switchyard/inbox"
	"github.com/switchyard-go/switchyard/outbox"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

func main() {
	redisAddr := flag.String("redis", envOr("ORDERS_REDIS", "127.0.0.1:6379"), "Redis address (env ORDERS_REDIS)")
	dbPath := flag.String("db", envOr("ORDERS_DB", defaultDB()), "SQLite file of the service (env ORDERS_DB)")
	listen := flag.String("listen", envOr("ORDERS_LISTEN", "127.0.0.1:8090"), "HTTP address (env ORDERS_LISTEN)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *redisAddr, *dbPath, *listen, log, nil); err != nil {
		log.Error("orders", "err", err)
		os.Exit(1)
	}
}

// envOr returns the environment variable name, or def when it is unset
// or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// defaultDB is the database's default path: in the OS temporary
// directory, not the working tree (SQLite writes -wal and -shm files
// beside it).
func defaultDB() string { return filepath.Join(os.TempDir(), "switchyard-orders.db") }

// run serves until ctx is done; ready, when not nil, gets the address.
func run(ctx context.Context, redisAddr, dbPath, listen string, log *slog.Logger, ready chan<- string) error {
	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, total INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, order_event TEXT NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
		return err
	}

	client := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer client.Close()
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{Stream: "events"})
	if err != nil {
		return err
	}
	defer pub.Close()

	// The relay: outbox rows to the stream.
	relay, err := outbox.NewRelay(outbox.RelayConfig{DB: db, Dialect: outbox.SQLite, Publisher: pub, Logger: log})
	if err != nil {
		return err
	}
	go func() { _ = relay.Run(ctx) }()
	defer relay.Close()

	// A consumer that must charge each order once, however often the
	// event is delivered: the charge row and the inbox's done mark commit
	// in one transaction.
	sub, err := redis.NewSubscriber(ctx, client, redis.SubscriberConfig{Streams: []string{"events"}, Group: "billing", Logger: log})
	if err != nil {
		return err
	}
	defer sub.Close()
	store := inbox.SQLStore{DB: db}
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	reg := inbox.NewRegistry(store, inbox.Options{Timeout: 10 * time.Second})
	if err := reg.RegisterTx("order.created", "billing.charge", func(ctx context.Context, tx *sql.Tx, ev pubsub.Event) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO charges (event_id, order_event) VALUES ($1, $2)`, string(ev.ID), string(ev.Payload)); err != nil {
			return err
		}
		log.Info("billing: charging", "event_id", ev.ID, "order", string(ev.Payload), "correlation_id", ev.Meta.CorrelationID)
		return nil
	}); err != nil {
		return err
	}
	go sub.Consume(ctx, reg.Handle, nil)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Total int `json:"total"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Total <= 0 {
			http.Error(w, `want {"total": <positive cents>}`, http.StatusBadRequest)
			return
		}
		id, err := placeOrder(r.Context(), db, in.Total)
		if err != nil {
			log.Error("placing an order", "err", err)
			http.Error(w, "order not placed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]int64{"id": id})
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	log.Info("orders: listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// placeOrder stores the order and its event in one transaction: both or
// neither. The order's ID is the event's ordering key, so that the
// order's later events (paid, shipped) are published after it.
func placeOrder(ctx context.Context, db *sql.DB, total int) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO orders (total) VALUES ($1)`, total)
	if err != nil {
		return 0, err
	}
	id, _ := res.LastInsertId()
	ev := pubsub.NewEvent(ctx, "order.created", fmt.Appendf(nil, `{"body":{"order_id":%d,"total":%d}}`, id, total))
	if err := outbox.WriteOrdered(ctx, tx, fmt.Sprint("order-", id), ev); err != nil {
		return 0, err
	}
	return id, tx.Commit()
}
