package main

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/redistest"
)

// lines collects log output, safe for concurrent writes.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *lines) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// TestOrderFlowsToBillingOnce runs the example against a redis-server: an
// order placed over HTTP reaches the billing consumer exactly once.
func TestOrderFlowsToBillingOnce(t *testing.T) {
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Kill()
	var logs lines
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	dbPath := filepath.Join(t.TempDir(), "orders.db")
	go func() {
		done <- run(ctx, srv.Addr, dbPath, "127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)), ready)
	}()
	addr := <-ready
	defer func() { cancel(); <-done }()

	resp, err := http.Post("http://"+addr+"/orders", "application/json", strings.NewReader(`{"total": 990}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %v %v", resp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "billing: charging") {
		if time.Now().After(deadline) {
			t.Fatalf("the order never reached billing:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the log
	}
	if n := strings.Count(logs.String(), "billing: charging"); n != 1 {
		t.Errorf("billing charged %d times", n)
	}
	if !strings.Contains(logs.String(), `order="{\"body\":{\"order_id\":1,\"total\":990}}"`) {
		t.Errorf("billing saw another payload:\n%s", logs.String())
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var charges int
	for charges == 0 && time.Now().Before(deadline) { // the charge commits after its log line
		if err := db.QueryRow(`SELECT COUNT(*) FROM charges`).Scan(&charges); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // polling the database
	}
	if charges != 1 {
		t.Errorf("%d charge rows, want 1", charges)
	}
}
