package kubernetes

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/internal/redistest"
)

// What the bridge runs need, made once: the bridge binary built from this
// checkout and a redis-server.
var (
	setUpOnce    sync.Once
	setUpErr     error
	bridgeBinary string
	redisServer  *redistest.Server
	workDir      string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if redisServer != nil {
		redisServer.Kill()
	}
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// setUp builds the bridge and starts Redis, the first time a test needs
// them.
func setUp(t *testing.T) {
	t.Helper()
	setUpOnce.Do(func() {
		workDir, setUpErr = os.MkdirTemp("", "switchyard-kubernetes-")
		if setUpErr != nil {
			return
		}
		bridgeBinary = filepath.Join(workDir, "webhook-bridge")
		if setUpErr = bridgetest.Build("../..", bridgeBinary); setUpErr != nil {
			return
		}
		redisDir := filepath.Join(workDir, "redis")
		if setUpErr = os.Mkdir(redisDir, 0o755); setUpErr != nil {
			return
		}
		redisServer, setUpErr = redistest.Start(redisDir)
	})
	if setUpErr != nil {
		t.Fatal(setUpErr)
	}
}

// TestBridgeRunsWithEachConfiguration starts the real bridge with the
// configuration file of every bridge container the manifests and the chart
// define, its environment as the kubelet would give it (the Secrets'
// values, the Pod's name, the plain values), on a real Redis, and checks
// what the Pod relies on: the probe paths and /metrics answer on the port
// the manifest names, POST /v1/events wants the token the Secret signs,
// the admin API takes the Secret's token, and SIGTERM drains: /readyz
// answers 503 while POST /v1/events is still taken, then the process ends
// within the bound the grace period was checked against.
func TestBridgeRunsWithEachConfiguration(t *testing.T) {
	setUp(t)
	var bundles []*bundle
	for _, dir := range []string{"deployment", "sidecar"} {
		bundles = append(bundles, loadDir(t, dir))
	}
	for _, vs := range valueSets {
		b, _ := renderBundle(t, vs.name, readValues(t, vs.file))
		bundles = append(bundles, b)
	}
	for _, b := range bundles {
		all, err := bridges(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, bc := range all {
			t.Run(b.name, func(t *testing.T) { runBridge(t, b, bc) })
		}
	}
}

var (
	listenLine = regexp.MustCompile(`(?m)^listen:.*$`)
	delayLine  = regexp.MustCompile(`(?m)^shutdown_delay:.*$`)
)

// drainDelay is the shutdown_delay the runs below use instead of the
// configuration's (5s), so that the drain is seen without waiting 5 s a
// run; long enough for a readiness poll and a post on a busy machine.
const drainDelay = time.Second

func runBridge(t *testing.T, b *bundle, bc bridgeContainer) {
	// The port the manifest names: the probes' and the annotation's.
	for _, p := range []*corev1.Probe{bc.c.LivenessProbe, bc.c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Fatal("the bridge container lacks an httpGet liveness or readiness probe")
		}
	}
	port, ok := containerPort(bc.c, bc.c.ReadinessProbe.HTTPGet.Port)
	if !ok || !strings.HasSuffix(fmt.Sprint(bc.config["listen"]), ":"+strconv.Itoa(int(port))) {
		t.Fatalf("config listen %v is not the readiness probe's port %d", bc.config["listen"], port)
	}
	// The same configuration on a free loopback port instead (the test
	// cannot take the Pod's port on this machine), the only change.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	if !listenLine.MatchString(bc.configText) {
		t.Fatalf("config has no top-level listen line:\n%s", bc.configText)
	}
	// The configuration drains (the checks count its delay in the grace
	// period); the run proves the drain with a shorter delay, the other
	// change.
	delay, err := durationOf(bc.config, "shutdown_delay", 0)
	if err != nil {
		t.Fatal(err)
	}
	if delay <= 0 {
		t.Errorf("config shutdown_delay %s: want a delay, so that the Pod goes on taking events until it is out of the Service's endpoints", delay)
	}
	if n := len(delayLine.FindAllString(bc.configText, -1)); n != 1 {
		t.Fatalf("config has %d top-level shutdown_delay lines; want one:\n%s", n, bc.configText)
	}
	text := listenLine.ReplaceAllString(bc.configText, "listen: "+addr)
	text = delayLine.ReplaceAllString(text, "shutdown_delay: "+drainDelay.String())
	configPath := filepath.Join(t.TempDir(), filepath.Base(bc.configPath))
	if err := os.WriteFile(configPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	env := containerEnv(t, b, bc)
	// The Redis the Secret points at is this test's.
	env[envName(t, bc, "redis", "url")] = "redis://" + redisServer.Addr + "/0"
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}

	var logs bytes.Buffer
	cmd := exec.Command(bridgeBinary, "--config", configPath)
	cmd.Env = environ // only what the container has, as in a scratch image
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("bridge output:\n%s", logs.String())
		}
	}()

	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{bc.c.LivenessProbe.HTTPGet.Path, bc.c.ReadinessProbe.HTTPGet.Path} {
		waitFor200(t, client, base+path, exited)
	}
	if annotated := bc.deployment.Spec.Template.Annotations["prometheus.io/path"]; annotated != "" {
		status, body := get(t, client, base+annotated, "")
		if status != http.StatusOK || !strings.Contains(body, "webhook_bridge_") {
			t.Errorf("GET %s (the prometheus.io/path annotation): %d, no webhook_bridge_ metric", annotated, status)
		}
	}

	// Listening beyond loopback, the bridge wants the tokens.
	jwtSecret := fromEnv(t, bc, env, "auth", "jwt_secret")
	adminToken := fromEnv(t, bc, env, "auth", "admin_token")
	event := `{"name":"deploy.kubernetes.check","payload":{"ok":true}}`
	if status := post(t, client, base+"/v1/events", "", event); status != http.StatusUnauthorized {
		t.Errorf("POST /v1/events without a token: %d; want 401", status)
	}
	if status := post(t, client, base+"/v1/events", hs256(t, jwtSecret), event); status != http.StatusAccepted {
		t.Errorf("POST /v1/events with a token signed with the Secret's jwt secret: %d; want 202", status)
	}
	if status, _ := get(t, client, base+"/v1/subscriptions", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/subscriptions without the admin token: %d; want 401", status)
	}
	status, body := get(t, client, base+"/v1/subscriptions", adminToken)
	if status != http.StatusOK {
		t.Errorf("GET /v1/subscriptions with the Secret's admin token: %d", status)
	}
	subs, _ := bc.config["subscriptions"].([]any)
	for _, s := range subs {
		if id := s.(map[string]any)["id"].(string); !strings.Contains(body, `"`+id+`"`) {
			t.Errorf("GET /v1/subscriptions does not list %s, from the config:\n%s", id, body)
		}
	}

	// SIGTERM: not ready at once, yet events are still taken during the
	// delay; then out within shutdown_delay plus shutdown_timeout plus 5 s,
	// the bound the grace period exceeds, with status 0.
	shutdown, err := durationOf(bc.config, "shutdown_timeout", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bound := drainDelay + shutdown + 5*time.Second
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	readiness := base + bc.c.ReadinessProbe.HTTPGet.Path
	for {
		status, body := get(t, client, readiness, "")
		if status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Since(signalled) > drainDelay {
			t.Fatalf("GET %s after SIGTERM: %d %q; want 503 shutting down within shutdown_delay %s", readiness, status, body, drainDelay)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	sent := time.Since(signalled)
	status = post(t, client, base+"/v1/events", hs256(t, jwtSecret), event)
	if status != http.StatusAccepted {
		t.Errorf("POST /v1/events %s after SIGTERM, within shutdown_delay %s: %d; want 202", sent.Round(time.Millisecond), drainDelay, status)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v; want status 0", err)
		}
		if took := time.Since(signalled); took < drainDelay {
			t.Errorf("exited %s after SIGTERM, before shutdown_delay %s was over", took, drainDelay)
		}
	case <-time.After(bound - time.Since(signalled)):
		t.Errorf("still running %s after SIGTERM", bound)
	}
	if !strings.Contains(logs.String(), "stopping after shutdown_delay") {
		t.Errorf("the log does not say the bridge waits out shutdown_delay")
	}
}

// envName returns NAME of the setting section.key, which must be ${NAME}.
func envName(t *testing.T, bc bridgeContainer, section, key string) string {
	t.Helper()
	sec, _ := bc.config[section].(map[string]any)
	v, _ := sec[key].(string)
	m := envRef.FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("config %s.%s %q: want ${NAME}", section, key, v)
	}
	return m[1]
}

// fromEnv is the value the setting section.key takes from env.
func fromEnv(t *testing.T, bc bridgeContainer, env map[string]string, section, key string) string {
	t.Helper()
	return env[envName(t, bc, section, key)]
}

// containerEnv is the environment the kubelet gives the bridge container:
// plain values, the Pod's name, the Secrets' values (made up for a Secret
// the user makes), and resource limits.
func containerEnv(t *testing.T, b *bundle, bc bridgeContainer) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range bc.c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = bc.deployment.Name + "-5d8c7b9f4-x2x7q"
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if s := findSecret(b, ref.Name); s != nil {
				env[e.Name] = secretData(s)[ref.Key]
			} else {
				// A Secret the user makes: a value of the form a webhook
				// secret wants, which every other secret takes too.
				raw := make([]byte, 32)
				rand.Read(raw)
				env[e.Name] = "whsec_" + base64.StdEncoding.EncodeToString(raw)
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			ref := e.ValueFrom.ResourceFieldRef
			q, ok := bc.c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))]
			if !ok {
				t.Fatalf("env %s: the container has no %s", e.Name, ref.Resource)
			}
			env[e.Name] = strconv.FormatInt(q.Value(), 10)
		default:
			t.Fatalf("env %s: a source this test does not know", e.Name)
		}
	}
	return env
}

func waitFor200(t *testing.T, client *http.Client, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("the bridge exited before %s answered: %v", url, err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no 200 within 30s (last: %v)", url, errors.Join(err, statusErr(resp)))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func statusErr(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	return fmt.Errorf("status %d", resp.StatusCode)
}

func get(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, client *http.Client, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// hs256 is a bearer token as an application signs it with the shared
// secret: HS256, expiring in a minute.
func hs256(t *testing.T, secret string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{"sub": "deploy-test", "exp": time.Now().Add(time.Minute).Unix()})
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
