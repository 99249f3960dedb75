package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// blackhole is a TCP listener that accepts connections, reads nothing
// and never answers: an OTLP collector that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// failing500 is an OTLP endpoint that answers every export with 500.
func failing500(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "collector broken", http.StatusInternalServerError)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// postWithTrace posts one event with raw trace headers (nil: none).
func postWithTrace(t *testing.T, p *proc, n int, traceparent, tracestate string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/v1/events", strings.NewReader(fmt.Sprintf(`{"name":"order.created","payload":{"n":%d}}`, n)))
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header["Traceparent"] = []string{traceparent}
	}
	if tracestate != "" {
		req.Header["Tracestate"] = []string{tracestate}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events #%d (traceparent %.40q): %d %s", n, traceparent, resp.StatusCode, body)
	}
}

// traceHeaderCases are traceparent/tracestate headers a client may send;
// every one must be accepted and delivered once, as without it.
var traceHeaderCases = []struct{ tp, ts string }{
	{"", ""},
	{callerTraceparent, ""},
	{callerTraceparent, "vendor=value,other=x"},
	{"garbage", ""},
	{"00-00000000000000000000000000000000-0000000000000000-01", ""},
	{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
	{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", ""},
	{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra-stuff", ""},
	{callerTraceparent, strings.Repeat("k=v,", 5000)},
	{strings.Repeat("00-", 6000), strings.Repeat("x", 20000)}, // under the 64 KiB header limit
	{"00-\xff\xfe\x80\x81-\xc3\x28-01", "k=\xff\xfe,\xe2\x82=1"},
	{callerTraceparent[:54] + "\xff", "\x80"},
	{callerTraceparent + ", 00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01", "a=1,,,,b=2,=,=="},
}

// With an OTLP endpoint that accepts and never answers, or answers 500,
// the bridge still delivers every event once (whatever trace headers it
// was posted with), with signatures that verify, and stops on SIGTERM
// within shutdown_timeout + the documented 5s flush bound.
func TestAdv10BrokenCollectorDeliversAndStopsInBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint func(*testing.T) string
	}{
		{"blackhole", blackhole},
		{"500", failing500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
			secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
			sink := httpsink.New(t, nil)
			const shutdown = 2 * time.Second
			p := startBridge(t, `listen: LISTEN
shutdown_timeout: 2s
telemetry:
  otlp_endpoint: `+tc.endpoint(t)+`
subscriptions:
  - id: orders
    topic: order.created
    url: `+sink.URL+`/hook
    secret: `+secret+`
`)
			for i, c := range traceHeaderCases {
				postWithTrace(t, p, i, c.tp, c.ts)
			}
			hits := sink.WaitFor(t, len(traceHeaderCases), wait)
			seen := map[string]int{}
			for _, h := range hits {
				seen[string(h.Body)]++
				if !verifySignature(secret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
					t.Errorf("delivery %s: signature does not verify (traceparent %q)", h.Body, h.Header.Get("Traceparent"))
				}
			}
			for i := range traceHeaderCases {
				if n := seen[fmt.Sprintf(`{"n":%d}`, i)]; n != 1 {
					t.Errorf("event #%d (traceparent %.40q) delivered %d times, want 1", i, traceHeaderCases[i].tp, n)
				}
			}
			start := time.Now()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			bound := shutdown + telemetryFlushTimeout + 1500*time.Millisecond
			select {
			case <-p.exited:
			case <-time.After(bound + 5*time.Second):
				t.Fatalf("webhook-bridge still running %s after SIGTERM (bound %s)", time.Since(start), bound)
			}
			took := time.Since(start)
			t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
			if took > bound {
				t.Errorf("webhook-bridge took %s to stop after SIGTERM, want within shutdown_timeout %s + flush %s (+slack)", took, shutdown, telemetryFlushTimeout)
			}
		})
	}
}

// runUntilListeningOrExit runs the binary on config with extra env and
// returns its output and whether it exited (false: it came up
// listening, and was killed).
func runUntilListeningOrExit(t *testing.T, config string, env ...string) (string, bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "LISTEN", freeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--config", path)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	listening := false
	sc := bufio.NewScanner(stderr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "webhook-bridge: listening") {
				listening = true
				_ = cmd.Process.Kill()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	_ = cmd.Wait()
	return out.String(), !listening
}

// An OTLP endpoint given in an OTEL_* variable that is not an http(s)
// URL is a telemetry config error that names the variable, as it is for
// OTEL_EXPORTER_OTLP_ENDPOINT and telemetry.otlp_endpoint; it must not
// start a bridge that exports nowhere.
func TestAdv10BadTracesEndpointVariableIsRefused(t *testing.T) {
	for _, v := range []string{"collector:4318", "ftp://collector:4318/v1/traces", "http:///v1/traces", "::not a url", "http://collector:99999999/v1/traces", "http://:4318/v1/traces"} {
		t.Run(v, func(t *testing.T) {
			out, exited := runUntilListeningOrExit(t, "listen: LISTEN\n", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+v)
			if !exited {
				t.Fatalf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=%q: the bridge started (spans go nowhere), want a start error naming the variable:\n%s", v, out)
			}
			if !strings.Contains(out, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
				t.Fatalf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=%q: the error does not name the variable:\n%s", v, out)
			}
		})
	}
}

// A sample_ratio that is not a number between 0 and 1 is refused naming
// the key: NaN is neither.
func TestAdv10SampleRatioNaNIsRefused(t *testing.T) {
	for _, v := range []string{".nan", ".NaN", "-.inf", ".inf"} {
		_, err := parseConfig([]byte("telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  sample_ratio: " + v + "\n"))
		if err == nil || !strings.Contains(err.Error(), "telemetry.sample_ratio") {
			t.Errorf("sample_ratio: %s: parseConfig = %v, want an error naming telemetry.sample_ratio", v, err)
		}
	}
}

// Retry events written into the stream by hand (or by an older or other
// bridge) with a hostile first_attempt_traceparent, and a hostile
// traceparent field of their own, are delivered once each, as the
// attempt they say, with spans off and with spans on.
func TestAdv10HostileRetryTraceContextStillDelivers(t *testing.T) {
	links := []string{
		`"garbage"`, `12`, `{"a":1}`, `null`, `[1,2]`, `true`,
		`"` + strings.Repeat("00-", 1<<18) + `"`,
		`"\udc00\u0000\u00ff"`,
		`"00-00000000000000000000000000000000-0000000000000000-01"`,
		`"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
		`"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`,
	}
	entryTP := []string{"", "garbage", "\xff\xfe", callerTraceparent, strings.Repeat("x", 1<<20)}
	for _, mode := range []string{"off", "on"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
			secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
			sink := httpsink.New(t, nil)
			backend := backendConfig("redis")
			stream := strings.TrimSpace(strings.SplitN(strings.SplitN(backend, "stream: ", 2)[1], "\n", 2)[0])
			tel := ""
			if mode == "on" {
				tel = "telemetry:\n  otlp_endpoint: " + newOTLPReceiver(t).URL + "\n"
			}
			p := startBridge(t, backend+tel+`listen: LISTEN
subscriptions:
  - id: orders
    topic: order.created
    url: `+sink.URL+`/hook
    secret: `+secret+`
`)
			client := testRedisClient(t)
			n := 0
			for i, link := range links {
				for j, tp := range entryTP {
					if (i+j)%2 == 1 && i != 0 && j != 0 {
						continue // a sample of the pairs keeps the test fast
					}
					payload := fmt.Sprintf(`{"subscription_id":"orders","attempts":2,"last_status":500,`+
						`"event":{"id":"evt-%d-%d","name":"order.created","meta":{"created_at_utc":"2026-01-02T03:04:05Z","correlation_id":"","attempts":0,"is_dry_run":false},"payload":"%s"},`+
						`"first_attempt_traceparent":%s}`, i, j, base64Std(fmt.Sprintf(`{"n":"%d-%d"}`, i, j)), link)
					vals := []any{"id", fmt.Sprintf("evt-%d-%d/orders/2", i, j), "name", "switchyard.webhook.retry", "payload", payload, "attempts", "2"}
					if tp != "" {
						vals = append(vals, "traceparent", tp, "tracestate", tp)
					}
					if err := client.XAdd(t.Context(), &goredis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
						t.Fatal(err)
					}
					n++
				}
			}
			hits := sink.WaitFor(t, n, wait)
			seen := map[string]int{}
			for _, h := range hits {
				seen[string(h.Body)]++
				if a := h.Header.Get("Webhook-Attempt"); a != "3" {
					t.Errorf("delivery %s: Webhook-Attempt %q, want 3", h.Body, a)
				}
				if !verifySignature(secret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
					t.Errorf("delivery %s: signature does not verify", h.Body)
				}
			}
			t.Logf("%d retry events delivered", n)
			if len(seen) != n {
				t.Errorf("%d distinct deliveries, want %d", len(seen), n)
			}
			for b, c := range seen {
				if c != 1 {
					t.Errorf("%s delivered %d times", b, c)
				}
			}
			if dead, _ := client.XLen(t.Context(), "{"+stream+"}:dead").Result(); dead != 0 {
				t.Errorf("%d dead letters", dead)
			}
			if strings.Contains(p.logs(), "panic") {
				t.Errorf("panic in the log")
			}
		})
	}
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// With tracing off, every hostile trace header is accepted and its event
// delivered once; the receiver gets the posted traceparent (and
// tracestate) when it was valid, and no traceparent when it was not.
func TestAdv10HostileTraceHeadersWithTracingOff(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sink := httpsink.New(t, nil)
	p := startBridge(t, backendConfig("redis")+`listen: LISTEN
subscriptions:
  - id: orders
    topic: order.created
    url: `+sink.URL+`/hook
    secret: `+secret+`
`)
	for i, c := range traceHeaderCases {
		postWithTrace(t, p, i, c.tp, c.ts)
	}
	hits := sink.WaitFor(t, len(traceHeaderCases), wait)
	byBody := map[string][]httpsink.Hit{}
	for _, h := range hits {
		byBody[string(h.Body)] = append(byBody[string(h.Body)], h)
		if !verifySignature(secret, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
			t.Errorf("delivery %s: signature does not verify", h.Body)
		}
	}
	for i, c := range traceHeaderCases {
		got := byBody[fmt.Sprintf(`{"n":%d}`, i)]
		if len(got) != 1 {
			t.Errorf("event #%d delivered %d times, want 1", i, len(got))
			continue
		}
		tp, ts := got[0].Header.Get("Traceparent"), got[0].Header.Get("Tracestate")
		switch {
		case c.tp == callerTraceparent && (c.ts == "" || c.ts == "vendor=value,other=x"):
			if tp != callerTraceparent || ts != c.ts {
				t.Errorf("event #%d: receiver got traceparent %q tracestate %q, want %q %q", i, tp, ts, callerTraceparent, c.ts)
			}
		case c.tp == callerTraceparent:
			if tp != callerTraceparent {
				t.Errorf("event #%d (tracestate %.30q): receiver got traceparent %q, want %q", i, c.ts, tp, callerTraceparent)
			}
		case strings.HasPrefix(c.tp, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"):
			// A future version with more fields: W3C says parse its first four.
			if tp != callerTraceparent {
				t.Logf("event #%d: a version-01 traceparent with extra fields gave %q", i, tp)
			}
		default:
			if tp != "" && tp != callerTraceparent {
				t.Errorf("event #%d (traceparent %.40q): receiver got traceparent %q", i, c.tp, tp)
			}
		}
	}
}

// hangingReceiver accepts deliveries and answers none until the test
// ends; started reports each request's arrival.
func hangingReceiver(t *testing.T) (string, chan struct{}) {
	t.Helper()
	started := make(chan struct{}, 16)
	release := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })
	return "http://" + l.Addr().String(), started
}

// With a hanging collector and a delivery in flight to a receiver that
// never answers, SIGTERM ends the bridge within shutdown_timeout + the 5s
// flush bound, and a second SIGTERM during the shutdown stops it at once
// (the docs: "stops the process at once").
func TestAdv10ShutdownBoundWithHangingCollectorAndDelivery(t *testing.T) {
	for _, second := range []bool{false, true} {
		t.Run(fmt.Sprintf("second-sigterm=%v", second), func(t *testing.T) {
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
			recvURL, started := hangingReceiver(t)
			const shutdown = 2 * time.Second
			p := startBridge(t, backendConfig("redis")+`listen: LISTEN
shutdown_timeout: 2s
telemetry:
  otlp_endpoint: `+blackhole(t)+`
subscriptions:
  - id: orders
    topic: order.created
    url: `+recvURL+`/hook
    timeout: 60s
`)
			postWithTrace(t, p, 1, callerTraceparent, "")
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatal("the delivery never reached the receiver")
			}
			start := time.Now()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			bound := shutdown + telemetryFlushTimeout + 1500*time.Millisecond
			if second {
				deadline := time.Now().Add(wait)
				for !strings.Contains(p.logs(), "shutting down") && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond) // polling the log with a deadline
				}
				start = time.Now()
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				bound = 1500 * time.Millisecond
			}
			select {
			case <-p.exited:
			case <-time.After(bound + 10*time.Second):
				t.Fatalf("still running %s after SIGTERM", time.Since(start))
			}
			took := time.Since(start)
			t.Logf("stopped %s after the last SIGTERM (bound %s)", took.Round(time.Millisecond), bound)
			if took > bound {
				t.Errorf("webhook-bridge took %s to stop, want within %s", took, bound)
			}
		})
	}
}

// With tracing off, an entry's traceparent and tracestate (a tracestate
// W3C allows at its longest: 32 members) reach the receiver as they were,
// on the first attempt and on its retry.
func TestAdv10EntryTraceContextReachesTheReceiverOnRetryToo(t *testing.T) {
	sink := httpsink.New(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n%2 == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	backend := backendConfig("redis")
	stream := strings.TrimSpace(strings.SplitN(strings.SplitN(backend, "stream: ", 2)[1], "\n", 2)[0])
	startBridge(t, backend+`listen: LISTEN
retry:
  schedule: [50ms]
  max_attempts: 3
subscriptions:
  - id: orders
    topic: order.created
    url: `+sink.URL+`/hook
`)
	members := make([]string, 32)
	for i := range members {
		members[i] = fmt.Sprintf("m%d=%s", i, strings.Repeat("z", 100))
	}
	long := strings.Join(members, ",")
	client := testRedisClient(t)
	cases := []string{"", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", long}
	for i, ts := range cases {
		vals := []any{"id", fmt.Sprintf("ts-%d", i), "name", "order.created", "payload", fmt.Sprintf(`{"i":%d}`, i), "traceparent", callerTraceparent}
		if ts != "" {
			vals = append(vals, "tracestate", ts)
		}
		if err := client.XAdd(t.Context(), &goredis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
		hits := sink.WaitFor(t, 2*(i+1), wait)
		for _, h := range hits[2*i:] {
			if string(h.Body) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Fatalf("delivery %s, want event %d", h.Body, i)
			}
			if got := h.Header.Get("Traceparent"); got != callerTraceparent {
				t.Errorf("event %d attempt %s: traceparent %q, want %q", i, h.Header.Get("Webhook-Attempt"), got, callerTraceparent)
			}
			if got := h.Header.Get("Tracestate"); got != ts {
				t.Errorf("event %d attempt %s: tracestate %.60q, want %.60q", i, h.Header.Get("Webhook-Attempt"), got, ts)
			}
		}
	}
}

// OTEL_* variables the docs list as honoured, set to values that cannot
// be used, are telemetry config errors naming the variable (as
// OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_PROTOCOL are), rather than
// being dropped with an unstructured line that names no variable: a
// bridge then runs with another sampler, without the collector's auth
// header, or without the CA it was told to trust.
func TestAdv10UnusableOTELVariablesAreRefused(t *testing.T) {
	for _, env := range []string{
		"OTEL_TRACES_SAMPLER=bogus",
		"OTEL_EXPORTER_OTLP_HEADERS=%%%",
		"OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem",
	} {
		t.Run(env, func(t *testing.T) {
			out, exited := runUntilListeningOrExit(t, "listen: LISTEN\ntelemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n", env)
			name, _, _ := strings.Cut(env, "=")
			if !exited || !strings.Contains(out, name) {
				t.Fatalf("%s: exited %v; want a start error naming %s:\n%s", env, exited, name, out)
			}
		})
	}
}
