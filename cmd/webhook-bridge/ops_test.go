package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// run runs the binary with args to its end and returns its standard
// output, standard error and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("webhook-bridge %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// waitLog waits until the bridge's log holds s, polling the output of
// another process.
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(p.logs(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge never logged %q:\n%s", s, p.logs())
		}
		time.Sleep(10 * time.Millisecond) // polling another process's log
	}
}

// exitedWithin waits for p to end by itself and returns its exit code; it
// fails the test if p still runs after d.
func exitedWithin(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("the bridge still runs %s later:\n%s", d, p.logs())
		return 0
	}
}

// hangingSink is a receiver that answers no delivery until the test ends
// or the bridge hangs up.
func hangingSink(t *testing.T) *httpsink.Sink {
	done := make(chan struct{})
	s := httpsink.New(t, func(_ int, r *http.Request, _ http.ResponseWriter) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(done) }) // runs before the sink's Close
	return s
}

func TestConfigStart(t *testing.T) {
	for yaml, want := range map[string]string{"": "end", "start: end\n": "end", "start: beginning\n": "beginning"} {
		cfg, err := parseConfig([]byte(yaml))
		if err != nil || cfg.Start != want {
			t.Errorf("%q: start %v, %v; want %s", yaml, cfg, err, want)
		}
	}
	_, err := parseConfig([]byte("start: middle\n"))
	if err == nil || err.Error() != `config: start "middle": want end or beginning` {
		t.Errorf("start: middle = %v", err)
	}
}

func TestConfigEnvDefault(t *testing.T) {
	t.Setenv("SET_LISTEN", "127.0.0.1:9999")
	t.Setenv("EMPTY_LISTEN", "")
	for yaml, want := range map[string]string{
		"listen: ${SET_LISTEN:-127.0.0.1:1}\n":     "127.0.0.1:9999",
		"listen: ${UNSET_LISTEN_X:-127.0.0.1:1}\n": "127.0.0.1:1",
		"listen: ${EMPTY_LISTEN:-127.0.0.1:2}\n":   "127.0.0.1:2",
		"listen: 127.0.0.1:${UNSET_PORT_X:-3}\n":   "127.0.0.1:3",
	} {
		cfg, err := parseConfig([]byte(yaml))
		if err != nil || cfg.Listen != want {
			t.Errorf("%q: listen %v, %v; want %s", yaml, cfg, err, want)
		}
	}
	if _, err := parseConfig([]byte("listen: ${UNSET_LISTEN_X}\n")); err == nil || !strings.Contains(err.Error(), "UNSET_LISTEN_X is not set") {
		t.Errorf("${UNSET} without a default = %v", err)
	}
}

// The example configs load as they are, on an empty environment.
func TestExampleConfigsLoad(t *testing.T) {
	for _, path := range []string{"../../examples/bridge.yaml", "../../examples/orders/bridge.yaml"} {
		if _, err := loadConfig(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestGroupStart(t *testing.T) {
	for _, tc := range []struct {
		start, log string
		delivered  bool
	}{
		{"beginning", "group starts at the beginning of the stream: events added before the group existed are delivered too", true},
		{"end", "group starts at the end of the stream: events added before the group existed are skipped", false},
	} {
		t.Run(tc.start, func(t *testing.T) {
			s := httpsink.New(t, nil)
			stream := fmt.Sprintf("e2e-start-%d-%d", time.Now().UnixNano(), streamSeq.Add(1))
			if err := testRedisClient(t).XAdd(context.Background(), &goredis.XAddArgs{
				Stream: stream, Values: []any{"id", "added-before", "name", "t", "payload", `{"n":0}`},
			}).Err(); err != nil {
				t.Fatal(err)
			}
			// One event at a time, so deliveries come in stream order.
			p := startBridge(t, fmt.Sprintf("redis:\n  url: redis://%s/0\nstream: %s\nconsumer: c1\nconcurrency: 1\nstart: %s\n", redisServer.Addr, stream, tc.start)+`
listen: LISTEN
subscriptions:
  - id: s
    topic: t
    url: `+s.URL+`
`)
			if !strings.Contains(p.logs(), tc.log) || !strings.Contains(p.logs(), "group_exists=false") {
				t.Errorf("no start line %q with group_exists=false in the log:\n%s", tc.log, p.logs())
			}
			after := p.emit(t, "", `{"name": "t", "payload": {"n": 1}, "id": "added-after"}`)[0]
			hits := s.WaitUntil(t, wait, "the event added after the start", func(hs []httpsink.Hit) bool {
				return len(hs) > 0 && hs[len(hs)-1].Header.Get("Webhook-Id") == after
			})
			var ids []string
			for _, h := range hits {
				ids = append(ids, h.Header.Get("Webhook-Id"))
			}
			want := "added-after"
			if tc.delivered {
				want = "added-before,added-after"
			}
			if got := strings.Join(ids, ","); got != want {
				t.Errorf("start: %s delivered %s, want %s", tc.start, got, want)
			}

			// Restarted, the group exists: start no longer applies.
			p.stop(syscall.SIGTERM)
			p = runBridge(t, p.config, freeAddr(t))
			if !strings.Contains(p.logs(), "the group exists already: it goes on from where it is") || !strings.Contains(p.logs(), "group_exists=true") {
				t.Errorf("restart: the log does not say the group exists:\n%s", p.logs())
			}
		})
	}
}

func TestStartLog(t *testing.T) {
	other := freeAddr(t)
	p := startBridge(t, `
listen: LISTEN
auth:
  jwt_secret: jwt-never-shown
  admin_token: admin-never-shown
targets:
  deny_private: true
  allow: [127.0.0.0/8]
subscriptions:
  - id: with-credentials
    topic: order.created
    url: https://user:pw-never-shown@hooks.example.com/in?token=query-never-shown
  - id: to-myself
    topic: "*"
    url: http://LISTEN/demo/receiver
  - id: to-another-bridge
    topic: t
    url: http://`+other+`/demo/receiver
`)
	logs := p.logs()
	for _, want := range []string{
		"backend=memory", "jwt_auth=on", "admin_api=on", "targets.deny_private=on", "demo=off", "subscriptions=3",
		`msg="webhook-bridge: subscription" id=with-credentials topic=order.created url="https://xxxxx@hooks.example.com/in?token=xxxxx" source=config`,
		`msg="webhook-bridge: subscription" id=to-myself topic=* url=http://` + p.addr + `/demo/receiver source=config`,
		`id=to-another-bridge`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the start log lacks %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"pw-never-shown", "query-never-shown", "jwt-never-shown", "admin-never-shown"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the start log shows %s", secret)
		}
	}
	warning := "subscription delivers to this bridge's own /demo/receiver, but the demo is off"
	if n := strings.Count(logs, warning); n != 1 || !strings.Contains(logs, "id=to-myself url=http://"+p.addr+"/demo/receiver") {
		t.Errorf("want one warning, for to-myself, got %d:\n%s", n, logs)
	}

	// Off is said as plainly as on.
	q := startBridge(t, "listen: LISTEN\n")
	for _, want := range []string{"backend=memory", "jwt_auth=off", "admin_api=off", "targets.deny_private=off", "subscriptions=0"} {
		if !strings.Contains(q.logs(), want) {
			t.Errorf("the start log lacks %s:\n%s", want, q.logs())
		}
	}
}

func TestDemoReceiverIsRecognised(t *testing.T) {
	self := ownAddresses("127.0.0.1:8080")
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080/demo/receiver":     true,
		"http://localhost:8080/demo/receiver/":    true,
		"http://[::1]:8080/demo/receiver":         true,
		"https://127.0.0.1:8080/demo/receiver":    true,
		"http://127.0.0.1:8081/demo/receiver":     false,
		"http://127.0.0.1:8080/demo/receiver2":    false,
		"http://example.com:8080/demo/receiver":   false,
		"http://127.0.0.1:8080/hooks":             false,
		"http://127.0.0.1/demo/receiver":          false,
		"http://app.localhost:8080/demo/receiver": true,
	} {
		if got := self.demoReceiver(url); got != want {
			t.Errorf("%s: %v, want %v", url, got, want)
		}
	}
	host, _ := os.Hostname()
	if all := ownAddresses("0.0.0.0:80"); !all.demoReceiver("http://"+host+"/demo/receiver") || !all.demoReceiver("http://127.0.0.1/demo/receiver") {
		t.Errorf("a bridge on every interface does not recognise its host name %q or loopback", host)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var flags []string
	for _, fs := range []*flag.FlagSet{func() *flag.FlagSet { fs, _ := newBridgeFlags(); return fs }(), func() *flag.FlagSet { fs, _ := newDLQFlags("list"); return fs }()} {
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--config", "x.yaml", "--help"}, {"dlq", "--help"}, {"dlq", "list", "-h"}, {"dlq", "replay", "--help"}} {
		stdout, stderr, code := runCLI(t, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		for _, want := range append([]string{"dlq list|replay", "--help", "--version"}, flags...) {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: the usage lacks %s:\n%s", args, want, stdout)
			}
		}
	}
	if _, stderr, code := runCLI(t, "--colour"); code == 0 || !strings.Contains(stderr, "flag provided but not defined: -colour (see webhook-bridge --help)") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("an unknown flag: exit %d, stderr %q; want one line and a failure", code, stderr)
	}

	stdout, stderr, code := runCLI(t, "--version")
	if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, "webhook-bridge ") {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// What it says is the build information the toolchain reads from the
	// binary.
	info, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(info), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[0] == "mod":
			if !strings.Contains(stdout, fields[2]) {
				t.Errorf("--version %q lacks the module version %s", stdout, fields[2])
			}
		case len(fields) == 2 && fields[0] == "build" && (strings.HasPrefix(fields[1], "vcs.revision=") || strings.HasPrefix(fields[1], "vcs.time=")):
			_, v, _ := strings.Cut(fields[1], "=")
			if !strings.Contains(stdout, v) {
				t.Errorf("--version %q lacks %s", stdout, fields[1])
			}
		}
	}
}

func TestDescribeBuild(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got, want := describeBuild(bi, ""), "v1.4.0 (revision 0123abcd (modified), committed 2026-12-01T10:00:00Z, go1.26.0)"; got != want {
		t.Errorf("describeBuild = %q, want %q", got, want)
	}
	if got, want := describeBuild(&debug.BuildInfo{GoVersion: "go1.26.0"}, ""), "(devel) (go1.26.0)"; got != want {
		t.Errorf("describeBuild without VCS = %q, want %q", got, want)
	}
	// A version stamped at link time (-X main.version) comes first, over
	// the module's version or its absence; the rest of the line stays.
	if got, want := describeBuild(bi, "v1.5.0-rc.1"), "v1.5.0-rc.1 (revision 0123abcd (modified), committed 2026-12-01T10:00:00Z, go1.26.0)"; got != want {
		t.Errorf("describeBuild stamped = %q, want %q", got, want)
	}
	if got, want := describeBuild(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "v2.0.0"), "v2.0.0 (go1.26.0)"; got != want {
		t.Errorf("describeBuild stamped over (devel) = %q, want %q", got, want)
	}
}

func TestDLQRefusesAnUnknownSubscription(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		s := httpsink.New(t, nil)
		p := startBridge(t, backendConfig(backend)+`
listen: LISTEN
auth:
  admin_token: tok
subscriptions:
  - id: from-config
    topic: t
    url: `+s.URL+`
`)
		if status, body := p.do(t, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "from-api", "topic": "t", "url": "`+s.URL+`"}`); status != http.StatusCreated {
			t.Fatalf("create = %d %s", status, body)
		}
		for _, verb := range []string{"list", "replay"} {
			_, stderr, code := runCLI(t, "dlq", verb, "--config", p.config, "--subscription", "nope")
			if code == 0 || !strings.Contains(stderr, `no subscription "nope"`) {
				t.Errorf("dlq %s --subscription nope: exit %d, stderr %q", verb, code, stderr)
			}
			for _, id := range []string{"from-config", "from-api"} {
				if _, stderr, code := runCLI(t, "dlq", verb, "--config", p.config, "--subscription", id); code != 0 {
					t.Errorf("dlq %s --subscription %s: exit %d, stderr %q", verb, id, code, stderr)
				}
			}
		}
	})
}

func TestSecondSignalStopsAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		s := hangingSink(t)
		p := startBridge(t, backendConfig(backend)+`
listen: LISTEN
shutdown_timeout: 5m
subscriptions:
  - id: hangs
    topic: t
    url: `+s.URL+`
    timeout: 5m
`)
		id := p.emit(t, "", `{"name": "t", "payload": {}}`)[0]
		s.WaitFor(t, 1, wait)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		waitLog(t, p, "webhook-bridge: shutting down")
		if !strings.Contains(p.logs(), "in_flight=1 ") {
			t.Errorf("the shutdown line does not count the delivery in flight:\n%s", p.logs())
		}
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		// Far sooner than the five minutes the delivery and the shutdown
		// could otherwise take.
		if code := exitedWithin(t, p, wait); code == 0 {
			t.Errorf("exit code 0 after abandoning a delivery")
		}
		what := "their events were not acknowledged and will be redelivered"
		if backend == "memory" {
			what = "on the in-memory backend their events are lost"
		}
		if want := "second SIGINT during the shutdown: stopping at once; deliveries in flight abandoned: " + what; !strings.Contains(p.logs(), want) {
			t.Errorf("no line %q:\n%s", want, p.logs())
		}
		if backend == "memory" {
			return
		}
		// Redelivered: by the same consumer once it runs again.
		healthy := httpsink.New(t, nil)
		cfg, err := os.ReadFile(p.config)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "bridge.yaml")
		if err := os.WriteFile(path, bytes.ReplaceAll(cfg, []byte(s.URL), []byte(healthy.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
		runBridge(t, path, freeAddr(t))
		// The restart waits for the lease on the consumer name (10s) first.
		if h := healthy.WaitFor(t, 1, 2*wait)[0]; h.Header.Get("Webhook-Id") != id {
			t.Errorf("redelivered %s, want %s", h.Header.Get("Webhook-Id"), id)
		}
	})
}

func TestShutdownTimeoutIsKept(t *testing.T) {
	s := hangingSink(t)
	p := startBridge(t, `
listen: LISTEN
shutdown_timeout: 200ms
subscriptions:
  - id: hangs
    topic: t
    url: `+s.URL+`
    timeout: 5m
`)
	p.emit(t, "", `{"name": "t", "payload": {}}`)
	s.WaitFor(t, 1, wait)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitedWithin(t, p, wait); code == 0 {
		t.Errorf("exit code 0 after abandoning a delivery")
	}
	if want := "shutdown_timeout reached: stopping; deliveries in flight abandoned: on the in-memory backend their events are lost"; !strings.Contains(p.logs(), want) {
		t.Errorf("no line %q:\n%s", want, p.logs())
	}
}

func TestUnreachableRedisIsOneCleanLine(t *testing.T) {
	addr := freeAddr(t) // nothing listens there
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			path := writeConfig(t, "listen: "+freeAddr(t)+"\nlog_level: "+level+"\nredis:\n  url: redis://"+addr+"/0\n")
			_, stderr, code := runCLI(t, "--config", path)
			want := "webhook-bridge: redis redis://" + addr + "/0: dial tcp " + addr + ": connect: connection refused\n"
			if code == 0 || !strings.HasSuffix(stderr, want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to end with %q", code, stderr, want)
			}
			if strings.Contains(stderr, "pool.go") {
				t.Errorf("go-redis printed its own lines:\n%s", stderr)
			}
			if level == "info" && stderr != want {
				t.Errorf("stderr holds more than the error:\n%s", stderr)
			}
			if level == "debug" && !strings.Contains(stderr, `level=DEBUG msg="go-redis: connection pool: failed to dial`) {
				t.Errorf("with log_level debug, go-redis's lines are not in the bridge's log:\n%s", stderr)
			}
		})
	}
}
