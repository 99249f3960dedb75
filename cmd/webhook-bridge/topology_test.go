package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/internal/redistest"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

func TestRedisTopologyConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOPO_SECRET", "s3cr3t-pw")
	for _, tc := range []struct{ name, yaml, want string }{
		{"two topologies", "redis:\n  url: redis://127.0.0.1:6379\n  cluster_url: redis://127.0.0.1:7000\n",
			"config: redis.url and redis.cluster_url are both set: want one of redis.url (one server), redis.cluster_url (a Cluster) or redis.sentinel_url"},
		{"cluster and sentinel", "redis:\n  cluster_url: redis://127.0.0.1:7000\n  sentinel_url: redis://127.0.0.1:26379?master_name=m\n",
			"config: redis.cluster_url and redis.sentinel_url are both set"},
		{"tls without a redis", "redis:\n  tls:\n    ca_file: " + notPEM + "\n", "config: redis.tls.ca_file is set without redis.url, redis.cluster_url or redis.sentinel_url"},
		{"tls with redis://", "redis:\n  url: redis://127.0.0.1:6379\n  tls:\n    server_name: r.example\n",
			"config: redis.tls.server_name is set but redis.url is not rediss://: TLS is turned on by the rediss scheme"},
		{"sentinel without master_name", "redis:\n  sentinel_url: redis://:${TOPO_SECRET}@127.0.0.1:26379\n",
			"config: redis.sentinel_url redis://:xxxxx@127.0.0.1:26379: master_name is missing"},
		{"sentinel unknown option", "redis:\n  sentinel_url: redis://127.0.0.1:26379?master_name=m&password=${TOPO_SECRET}&colour=red\n",
			"config: redis.sentinel_url redis://127.0.0.1:26379?colour=red&master_name=m&password=xxxxx: redis: unexpected option: colour"},
		{"cluster unknown option", "redis:\n  cluster_url: redis://u:${TOPO_SECRET}@127.0.0.1:7000?db=1\n",
			"config: redis.cluster_url redis://u:xxxxx@127.0.0.1:7000?db=1: redis: unexpected option: db"},
		{"cluster bad addr", "redis:\n  cluster_url: redis://127.0.0.1:7000?addr=nowhere\n", "redis: unable to parse addr param: nowhere"},
		{"unparseable", "redis:\n  cluster_url: redis://:${TOPO_SECRET}@127.0.0.1:notaport\n", "config: redis.cluster_url does not parse as a URL: want redis://[[user]:password@]host:port?addr="},
		{"skip_verify in the URL", "redis:\n  url: rediss://127.0.0.1:6379?skip_verify=true\n",
			"config: redis.url rediss://127.0.0.1:6379?skip_verify=true: skip_verify in the URL is refused: set redis.tls.insecure_skip_verify: true instead"},
		{"insecure with a CA", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    insecure_skip_verify: true\n    ca_file: " + notPEM + "\n",
			"config: redis.tls.insecure_skip_verify is set with redis.tls.ca_file or redis.tls.server_name"},
		{"ca_file missing", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    ca_file: " + filepath.Join(dir, "absent.pem") + "\n", "config: redis.tls.ca_file: open "},
		{"ca_file not PEM", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    ca_file: " + notPEM + "\n", "config: redis.tls.ca_file " + notPEM + ": no PEM certificate in it"},
		{"cert without key", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    cert_file: " + notPEM + "\n", "config: redis.tls.cert_file and redis.tls.key_file go together"},
		{"cert not PEM", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    cert_file: " + notPEM + "\n    key_file: " + notPEM + "\n", "config: redis.tls.cert_file " + notPEM + ", redis.tls.key_file " + notPEM + ": tls: failed to find any PEM data"},
		{"wait_replicas on a cluster", "redis:\n  cluster_url: redis://127.0.0.1:7000\n  wait_replicas: 1\n", "config: redis.wait_replicas works with redis.url or redis.sentinel_url, not redis.cluster_url"},
		{"wait_replicas in memory", "redis:\n  wait_replicas: 1\n", "config: redis.wait_replicas is set without redis.url or redis.sentinel_url"},
		{"wait_replicas negative", "redis:\n  url: redis://127.0.0.1:6379\n  wait_replicas: -1\n", "config: redis.wait_replicas is negative"},
		{"unknown tls key", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    ca: x\n", "config: unknown key redis.tls.ca (line 4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseConfig = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error spans several lines or shows the password: %q", err)
			}
		})
	}
}

// Each form reaches go-redis's options as its parser reads it, with the
// TLS keys applied.
func TestRedisTopologyConfigForms(t *testing.T) {
	dir := t.TempDir()
	files, err := redistest.NewTLSFiles(dir, "forms")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SENTINEL_PASSWORD", "sentinel-pw")
	t.Setenv("REDIS_PASSWORD", "data pw&=") // percent-encoded below, as a query value must be
	parse := func(t *testing.T, yaml string) *redisSetup {
		t.Helper()
		cfg, err := parseConfig([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		s, err := cfg.parseRedis()
		if err != nil || s == nil {
			t.Fatalf("parseRedis = %v, %v", s, err)
		}
		return s
	}
	t.Run("single over TLS", func(t *testing.T) {
		s := parse(t, "redis:\n  url: rediss://bridge:pw@r.internal:6380/2\n  tls:\n    ca_file: "+files.CA+"\n    cert_file: "+files.ClientCert+"\n    key_file: "+files.ClientKey+"\n")
		o := s.single
		if o == nil || o.Addr != "r.internal:6380" || o.DB != 2 || o.Username != "bridge" || o.TLSConfig == nil ||
			o.TLSConfig.ServerName != "r.internal" || o.TLSConfig.RootCAs == nil || len(o.TLSConfig.Certificates) != 1 {
			t.Errorf("options = %+v", o)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		s := parse(t, "redis:\n  cluster_url: rediss://bridge:pw@n1:7000?addr=n2:7000&addr=n3:7000&read_timeout=2s\n")
		o := s.cluster
		if o == nil || strings.Join(o.Addrs, ",") != "n1:7000,n2:7000,n3:7000" || o.ReadTimeout != 2*time.Second || o.Password != "pw" {
			t.Fatalf("options = %+v", o)
		}
		if o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
			t.Errorf("TLS server name %q: want each node checked against the host it dials", o.TLSConfig.ServerName)
		}
		if s := parse(t, "redis:\n  cluster_url: rediss://n1:7000\n  tls:\n    server_name: redis.internal\n"); s.cluster.TLSConfig.ServerName != "redis.internal" {
			t.Errorf("server_name not applied: %q", s.cluster.TLSConfig.ServerName)
		}
	})
	t.Run("sentinel with ACL users", func(t *testing.T) {
		s := parse(t, "redis:\n  sentinel_url: redis://sentinel:${SENTINEL_PASSWORD}@s1:26379/1?master_name=mymaster&addr=s2:26379&username=bridge&password=data%20pw%26%3D\n")
		o := s.failover
		if o == nil || o.MasterName != "mymaster" || strings.Join(o.SentinelAddrs, ",") != "s1:26379,s2:26379" || o.DB != 1 ||
			o.SentinelUsername != "sentinel" || o.SentinelPassword != "sentinel-pw" || o.Username != "bridge" || o.Password != "data pw&=" || o.TLSConfig != nil {
			t.Errorf("options = %+v", o)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		s := parse(t, "redis:\n  sentinel_url: rediss://s1:26379?master_name=m\n  tls:\n    insecure_skip_verify: true\n")
		if !s.failover.TLSConfig.InsecureSkipVerify {
			t.Error("insecure_skip_verify not applied")
		}
	})
}

// topologyConfig is a bridge's config on cfg's Redis, with a fresh stream.
func topologyConfig(redisLines, consumer string) string {
	return fmt.Sprintf("%sstream: topo-%d-%d\nconsumer: %s\nlisten: LISTEN\n", redisLines, time.Now().UnixNano(), streamSeq.Add(1), consumer)
}

// TestBridgeOnCluster runs the built bridge, two replicas of it, on a
// Redis Cluster of three masters: ingest, delivery, a retry, a dead
// letter (410), an admin change made through one replica reaching the
// other, the dedupe of a posted id, and dlq list and replay.
func TestBridgeOnCluster(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	addrs := c.Addrs()
	var gone atomic.Bool
	gone.Store(true)
	sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		switch {
		case r.URL.Path == "/flaky" && r.Header.Get("Webhook-Attempt") == "1":
			w.WriteHeader(http.StatusInternalServerError)
		case r.URL.Path == "/gone" && gone.Load():
			w.WriteHeader(http.StatusGone)
		}
	})
	cfg := topologyConfig(fmt.Sprintf("redis:\n  cluster_url: redis://%s?addr=%s&addr=%s\n", addrs[0], addrs[1], addrs[2]), "c1") + `
auth:
  admin_token: tok
retry:
  schedule: [100ms]
subscriptions:
  - {id: flaky, topic: order.created, url: "` + sink.URL + `/flaky"}
  - {id: gone, topic: user.left, url: "` + sink.URL + `/gone"}
`
	a := startBridge(t, cfg)
	b := startBridge(t, strings.Replace(cfg, "consumer: c1", "consumer: c2", 1))
	if !strings.Contains(a.logs(), "topology=cluster") {
		t.Errorf("the start log does not say the topology:\n%s", a.logs())
	}

	ids := a.emit(t, "", `[{"name": "order.created", "id": "order-1", "payload": {"n": 1}}, {"name": "user.left", "id": "user-1", "payload": {}}]`)
	flaky := sink.WaitUntil(t, wait, "the retry of order-1", func(hs []httpsink.Hit) bool { return len(hitsOf(hs, "/flaky")) == 2 })
	if got := strings.Join(attemptsOf(hitsOf(flaky, "/flaky")), ","); got != "1,2" {
		t.Errorf("flaky attempts = %s, want 1,2", got)
	}
	// The same id posted again, to the other replica, is not emitted.
	if status, body := b.post(t, "/v1/events", "", `{"name": "order.created", "id": "order-1", "payload": {"n": 1}}`); status != http.StatusOK || !strings.Contains(body, `"duplicates":["order-1"]`) {
		t.Errorf("the same id posted to the other replica = %d %s, want 200 naming it a duplicate", status, body)
	}

	var lines string
	deadline := time.Now().Add(wait)
	for lines == "" {
		if time.Now().After(deadline) {
			t.Fatal("the dead letter of user-1 never showed in dlq list")
		}
		lines = strings.TrimSpace(cli(t, "dlq", "list", "--config", a.config))
		time.Sleep(20 * time.Millisecond) // polling another process's writes
	}
	dl := dlqLines(t, lines)
	if len(dl) != 1 || dl[0].Event.ID != ids[1] || dl[0].Kind != "gone" || dl[0].LastStatus != http.StatusGone {
		t.Fatalf("dlq list = %+v, want user-1 gone", dl)
	}

	// A subscription made through a reaches b.
	if status, body := a.do(t, http.MethodPost, "/v1/subscriptions", "tok", `{"id": "late", "topic": "late", "url": "`+sink.URL+`/late"}`); status != http.StatusCreated {
		t.Fatalf("create on a = %d %s", status, body)
	}
	a.stop(syscall.SIGTERM)
	deadline = time.Now().Add(wait)
	for len(hitsOf(sink.Hits(), "/late")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica b never delivered to the subscription made on replica a")
		}
		b.emit(t, "", `{"name": "late", "payload": {}}`)
		time.Sleep(50 * time.Millisecond) // the pace of the probe events
	}

	gone.Store(false)
	if out := cli(t, "dlq", "replay", "--config", b.config, "--subscription", "gone"); !strings.Contains(out, "replayed 1 dead letter(s)") {
		t.Errorf("dlq replay said %q", out)
	}
	sink.WaitUntil(t, wait, "the replayed user-1", func(hs []httpsink.Hit) bool {
		for _, h := range hitsOf(hs, "/gone") {
			if h.Header.Get("Webhook-Id") == "user-1" && h.Header.Get("Webhook-Attempt") == "1" && h.Header.Get("Webhook-Subscription") == "gone" {
				return true
			}
		}
		return false
	})
	if out := strings.TrimSpace(cli(t, "dlq", "list", "--config", b.config)); out != "" {
		t.Errorf("dlq list after the replay: %s", out)
	}

	// What the bridge keeps sits in the stream's slot, on one master.
	bc, client := bridgeRedis(t, b)
	ctx := context.Background()
	want, err := client.ClusterKeySlot(ctx, bc.Stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{subscriptionsKey(bc), deadLetterKey(bc), retryStream(bc), redis.HelperKey(bc.Stream, "webhook:ingest") + ":order-1"} {
		slot, err := client.ClusterKeySlot(ctx, key).Result()
		if err != nil || slot != want {
			t.Errorf("key %s in slot %d (%v), the stream in %d", key, slot, err, want)
		}
		if n, err := client.Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Errorf("key %s: exists %d (%v), want it written", key, n, err)
		}
	}
}

// hitsOf keeps the hits on path.
func hitsOf(hs []httpsink.Hit, path string) []httpsink.Hit {
	var out []httpsink.Hit
	for _, h := range hs {
		if h.Path == path {
			out = append(out, h)
		}
	}
	return out
}

// TestBridgeThroughSentinelFailover runs the bridge through a sentinel,
// with ACL users and passwords from the environment, while events are
// posted; mid-run the sentinel fails the primary over to its replica.
// Every event answered 202 is delivered, and the bridge goes on taking
// and delivering events on the new primary.
func TestBridgeThroughSentinelFailover(t *testing.T) {
	s, err := redistest.StartSentinel(t.TempDir(), redistest.SentinelConfig{User: "bridge", Password: "data-pw", SentinelPassword: "sentinel-pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	t.Setenv("TOPO_SENTINEL_PASSWORD", "sentinel-pw")
	t.Setenv("TOPO_REDIS_PASSWORD", "data-pw")
	sink := httpsink.New(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.URL.Path == "/gone" {
			w.WriteHeader(http.StatusGone)
		}
	})
	p := startBridge(t, topologyConfig(fmt.Sprintf(`redis:
  sentinel_url: redis://:${TOPO_SENTINEL_PASSWORD}@%s/0?master_name=%s&username=bridge&password=${TOPO_REDIS_PASSWORD}
  wait_replicas: 1
`, s.Sentinel.Addr, s.MasterName), "c1")+`
subscriptions:
  - {id: all, topic: tick, url: "`+sink.URL+`"}
  - {id: gone, topic: gone, url: "`+sink.URL+`/gone"}
`)
	if !strings.Contains(p.logs(), "topology=sentinel") {
		t.Errorf("the start log does not say the topology:\n%s", p.logs())
	}

	var (
		mu       sync.Mutex
		accepted []string // answered 202
		refused  int      // answered otherwise (503 while the primary changes)
		afterFO  int      // answered 202 after the failover completed
	)
	var failedOver atomic.Bool
	stop := make(chan struct{})
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("ev-%d", i)
			// Not p.post, which may end the test: this is not its goroutine.
			status := -1
			if resp, err := http.Post("http://"+p.addr+"/v1/events", "application/json", strings.NewReader(`{"name": "tick", "id": "`+id+`", "payload": {}}`)); err == nil {
				status = resp.StatusCode
				_ = resp.Body.Close()
			}
			mu.Lock()
			if status == http.StatusAccepted {
				accepted = append(accepted, id)
				if failedOver.Load() {
					afterFO++
				}
			} else {
				refused++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // the producer's pace
		}
	}()
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), afterFO
	}
	waitCount := func(what string, ok func(total, after int) bool) {
		t.Helper()
		deadline := time.Now().Add(2 * wait)
		for {
			total, after := count()
			if ok(total, after) {
				return
			}
			if time.Now().After(deadline) {
				close(stop)
				<-posted
				t.Fatalf("waited for %s: %d accepted, %d after the failover", what, total, after)
			}
			time.Sleep(20 * time.Millisecond) // polling the producer's count
		}
	}
	waitCount("events accepted before the failover", func(total, _ int) bool { return total >= 30 })
	if err := s.Failover(); err != nil {
		close(stop)
		<-posted
		t.Fatal(err)
	}
	failedOver.Store(true)
	waitCount("events accepted after the failover", func(_, after int) bool { return after >= 30 })
	close(stop)
	<-posted

	mu.Lock()
	want := append([]string(nil), accepted...)
	mu.Unlock()
	delivered := func(hs []httpsink.Hit) map[string]bool {
		seen := map[string]bool{}
		for _, h := range hs {
			seen[h.Header.Get("Webhook-Id")] = true
		}
		return seen
	}
	sink.WaitUntil(t, 2*wait, "every accepted event", func(hs []httpsink.Hit) bool {
		seen := delivered(hs)
		for _, id := range want {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	t.Logf("%d events accepted (%d after the failover), %d refused while the primary changed", len(want), afterFO, refused)

	// A dead letter on the new primary, listed and replayed by the dlq
	// commands through the sentinel.
	gone := p.emit(t, "", `{"name": "gone", "payload": {}}`)[0]
	var lines []webhookhttp.DeadLetterView
	deadline := time.Now().Add(wait)
	for len(lines) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dead letter never showed in dlq list")
		}
		lines = dlqLines(t, cli(t, "dlq", "list", "--config", p.config))
		time.Sleep(20 * time.Millisecond) // polling another process's writes
	}
	if len(lines) != 1 || lines[0].Event.ID != gone || lines[0].Kind != "gone" {
		t.Errorf("dlq list = %+v, want the one gone event", lines)
	}
	if out := cli(t, "dlq", "replay", "--config", p.config, "--subscription", "gone"); !strings.Contains(out, "replayed 1 dead letter(s)") {
		t.Errorf("dlq replay said %q", out)
	}
	sink.WaitUntil(t, wait, "the replayed delivery", func(hs []httpsink.Hit) bool { return len(hitsOf(hs, "/gone")) == 2 })
	for _, secret := range []string{"sentinel-pw", "data-pw"} {
		if strings.Contains(p.logs(), secret) {
			t.Errorf("the log shows a password")
		}
	}
}

// TestBridgeOverTLS runs the bridge on a TLS-only redis-server that asks
// for client certificates: with rediss://, the CA and a client
// certificate a delivery goes through; with another CA, or without the
// client certificate, the bridge stops at start with one line.
func TestBridgeOverTLS(t *testing.T) {
	dir := t.TempDir()
	good, err := redistest.NewTLSFiles(dir, "good")
	if err != nil {
		t.Fatal(err)
	}
	other, err := redistest.NewTLSFiles(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redistest.StartTLS(dir, good, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	redisLines := func(ca string, clientCert bool) string {
		s := fmt.Sprintf("redis:\n  url: rediss://%s/0\n  tls:\n    ca_file: %s\n", srv.Addr, ca)
		if clientCert {
			s += fmt.Sprintf("    cert_file: %s\n    key_file: %s\n", good.ClientCert, good.ClientKey)
		}
		return s
	}
	sink := httpsink.New(t, nil)
	p := startBridge(t, topologyConfig(redisLines(good.CA, true), "c1")+`
subscriptions:
  - {id: s, topic: "*", url: "`+sink.URL+`"}
`)
	id := p.emit(t, "", `{"name": "over.tls", "payload": {"n": 1}}`)[0]
	if h := sink.WaitFor(t, 1, wait)[0]; h.Header.Get("Webhook-Id") != id {
		t.Errorf("delivered %s, want %s", h.Header.Get("Webhook-Id"), id)
	}
	if out := strings.TrimSpace(cli(t, "dlq", "list", "--config", p.config)); out != "" {
		t.Errorf("dlq list over TLS: %s", out)
	}

	for _, tc := range []struct{ name, redis, want string }{
		{"wrong CA", redisLines(other.CA, true), "x509: certificate signed by unknown authority"},
		{"no client certificate", redisLines(good.CA, false), "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, strings.ReplaceAll(topologyConfig(tc.redis, "c1"), "LISTEN", freeAddr(t)))
			start := time.Now()
			_, stderr, code := runCLI(t, "--config", path)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(last, "webhook-bridge: redis rediss://"+srv.Addr+"/0: ") || !strings.Contains(last, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and one line saying %q", code, stderr, tc.want)
			}
			t.Logf("refused in %s: %s", time.Since(start).Round(time.Millisecond), last)
		})
	}
}

// No topology's URL shows its passwords in the bridge's or the dlq
// commands' error, whether the URL is refused at load or names a Redis
// that does not answer (a Cluster here: unreachable sentinels take the
// bridge 10s to give up on).
func TestRedisPasswordsNeverInErrorsAnyTopology(t *testing.T) {
	for _, redisLines := range []string{
		"  sentinel_url: redis://s:s3cr3t-s@127.0.0.1:1?username=u&password=s3cr3t-d\n",
		"  sentinel_url: redis://s:s3cr3t-s@127.0.0.1:1?master_name=m&password=s3cr3t-d&pool_size=many\n",
		"  cluster_url: redis://u:s3cr3t-c@127.0.0.1:1?addr=127.0.0.1:2\n",
		"  cluster_url: redis://u:s3cr3t-c@127.0.0.1:1?addr=127.0.0.1:2&password=s3cr3t-q\n",
		"  url: rediss://u:s3cr3t-u@127.0.0.1:1/0?skip_verify=true\n",
	} {
		path := writeConfig(t, "listen: "+freeAddr(t)+"\nredis:\n"+redisLines)
		for _, args := range [][]string{{"--config", path}, {"dlq", "list", "--config", path}} {
			_, stderr, code := runCLI(t, args...)
			if code != 1 || strings.Contains(stderr, "s3cr3t") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%s%v: exit %d, stderr %q: want 1 and one line without the passwords", redisLines, args[:len(args)-2], code, stderr)
			}
		}
	}
}
