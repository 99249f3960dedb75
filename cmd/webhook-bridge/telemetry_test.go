package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-go/switchyard/internal/httpsink"
)

// otlpReceiver is an OTLP/HTTP receiver of traces: it decodes what is
// posted to /v1/traces and keeps the spans with their resource's
// attributes.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string // of the last batch
	errs     []string
	changed  chan struct{}
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{changed: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			r.fail("unexpected " + req.Method + " " + req.URL.Path)
			http.NotFound(w, req)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				r.fail("gzip: " + err.Error())
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &msg)
		}
		if err != nil {
			r.fail("decoding: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			r.resource = attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, msg)
}

// until waits for cond to hold for the spans received so far.
func (r *otlpReceiver) until(t *testing.T, what string, cond func([]*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		spans, ch, errs := append([]*tracepb.Span(nil), r.spans...), r.changed, r.errs
		r.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("OTLP receiver: %v", errs)
		}
		if cond(spans) {
			return spans
		}
		select {
		case <-ch:
		case <-deadline:
			var names []string
			for _, s := range spans {
				names = append(names, s.GetName())
			}
			t.Fatalf("timed out after %s waiting for %s; spans: %v", wait, what, names)
		}
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strings.TrimSpace(strings.TrimPrefix(v.String(), "int_value:"))
		}
	}
	return m
}

func spanNamed(spans []*tracepb.Span, name string) *tracepb.Span {
	for _, s := range spans {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func spanWithID(spans []*tracepb.Span, id []byte) *tracepb.Span {
	for _, s := range spans {
		if bytes.Equal(s.GetSpanId(), id) {
			return s
		}
	}
	return nil
}

const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// postTraced posts one event with the caller's traceparent.
func postTraced(t *testing.T, p *proc) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/v1/events", strings.NewReader(`{"name":"order.created","payload":{"n":1}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", callerTraceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", resp.StatusCode)
	}
}

// A traced POST /v1/events is delivered in the caller's trace, and the
// bridge exports the spans of its way over OTLP: caller → server span →
// send → process → webhook deliver → HTTP client span, the receiver's
// parent.
func TestTracingExportsTheDeliveryTrace(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	recv := newOTLPReceiver(t)
	sink := httpsink.New(t, nil)
	backend := backendConfig("redis")
	p := startBridge(t, backend+`
listen: LISTEN
telemetry:
  otlp_endpoint: `+recv.URL+`
subscriptions:
  - id: orders
    topic: order.created
    url: `+sink.URL+`/hook
`)
	if !strings.Contains(p.logs(), "tracing on") {
		t.Errorf("no start line saying tracing is on:\n%s", p.logs())
	}
	postTraced(t, p)
	hit := sink.WaitFor(t, 1, wait)[0]
	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(t.Context(), propagation.HeaderCarrier(hit.Header)))
	if got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("receiver's traceparent %q, want the caller's trace", hit.Header.Get("Traceparent"))
	}
	stream := strings.TrimSpace(strings.SplitN(strings.SplitN(backend, "stream: ", 2)[1], "\n", 2)[0])
	clientID := got.SpanID()
	spans := recv.until(t, "the delivery's spans", func(s []*tracepb.Span) bool {
		return spanWithID(s, clientID[:]) != nil && spanNamed(s, "webhook deliver") != nil && spanNamed(s, "process "+stream) != nil &&
			spanNamed(s, "send "+stream) != nil && spanNamed(s, "POST /v1/events") != nil
	})
	// From the receiver up to the caller.
	chain := []struct {
		name string
		kind tracepb.Span_SpanKind
	}{
		{"", tracepb.Span_SPAN_KIND_CLIENT},
		{"webhook deliver", tracepb.Span_SPAN_KIND_INTERNAL},
		{"process " + stream, tracepb.Span_SPAN_KIND_CONSUMER},
		{"send " + stream, tracepb.Span_SPAN_KIND_PRODUCER},
		{"POST /v1/events", tracepb.Span_SPAN_KIND_SERVER},
	}
	id := got.SpanID()
	var tree []string
	for _, want := range chain {
		s := spanWithID(spans, id[:])
		if s == nil {
			t.Fatalf("no span %x exported; the tree so far: %s", id, strings.Join(tree, " <- "))
		}
		tree = append(tree, s.GetName())
		if (want.name != "" && s.GetName() != want.name) || s.GetKind() != want.kind {
			t.Fatalf("span %q of kind %s, want %q of kind %s; the tree so far: %s", s.GetName(), s.GetKind(), want.name, want.kind, strings.Join(tree, " <- "))
		}
		if hex.EncodeToString(s.GetTraceId()) != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %q in trace %x", s.GetName(), s.GetTraceId())
		}
		copy(id[:], s.GetParentSpanId())
	}
	if id.String() != "00f067aa0ba902b7" {
		t.Errorf("the server span's parent is %s, want the caller's span 00f067aa0ba902b7", id)
	}
	deliver := attrs(spanNamed(spans, "webhook deliver").GetAttributes())
	for k, want := range map[string]string{"switchyard.webhook.subscription.id": "orders", "switchyard.webhook.outcome": "delivered",
		"url.full": sink.URL + "/hook", "http.response.status_code": "200", "switchyard.webhook.attempt": "1"} {
		if deliver[k] != want {
			t.Errorf("webhook deliver %s = %q, want %q", k, deliver[k], want)
		}
	}
	recv.mu.Lock()
	res := recv.resource
	recv.mu.Unlock()
	if res["service.name"] != "webhook-bridge" || res["service.instance.id"] != "c1" || res["service.version"] == "" {
		t.Errorf("resource %v, want service.name webhook-bridge, service.instance.id c1 and a service.version", res)
	}
	t.Logf("trace: %s <- caller", strings.Join(tree, " <- "))
}

// OTEL_EXPORTER_OTLP_ENDPOINT alone turns export on, with the service
// name OTEL_SERVICE_NAME gives.
func TestTracingOnFromTheEnvironment(t *testing.T) {
	recv := newOTLPReceiver(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "bridge-from-env")
	p := startBridge(t, "listen: LISTEN\n")
	postTraced(t, p)
	recv.until(t, "the server span", func(s []*tracepb.Span) bool { return spanNamed(s, "POST /v1/events") != nil })
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.resource["service.name"] != "bridge-from-env" {
		t.Errorf("service.name %q, want bridge-from-env", recv.resource["service.name"])
	}
}

// A protocol other than http/protobuf is refused at start, naming the
// variable.
func TestTracingRefusesAnotherProtocol(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\ntelemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--config", path)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `OTEL_EXPORTER_OTLP_PROTOCOL "grpc"`) {
		t.Fatalf("webhook-bridge with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: %v\n%s", err, out)
	}
}

func TestPlanExport(t *testing.T) {
	tests := []struct {
		name    string
		cfg     TelemetryConfig
		env     map[string]string
		on      bool
		url     string
		wantErr string
	}{
		{name: "nothing set", on: false},
		{name: "config", cfg: TelemetryConfig{OTLPEndpoint: "http://collector:4318"}, on: true, url: "http://collector:4318/v1/traces"},
		{name: "config with a path", cfg: TelemetryConfig{OTLPEndpoint: "https://otel.example/ingest/"}, on: true, url: "https://otel.example/ingest/v1/traces"},
		{name: "env only", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, on: true, url: "http://collector:4318/v1/traces"},
		{name: "traces env as is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/t"}, on: true, url: "http://b:4318/t"},
		{name: "config wins over env", cfg: TelemetryConfig{OTLPEndpoint: "http://c:4318"}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/t"}, on: true, url: "http://c:4318/v1/traces"},
		{name: "sdk disabled", cfg: TelemetryConfig{OTLPEndpoint: "http://c:4318"}, env: map[string]string{"OTEL_SDK_DISABLED": "true"}, on: false},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, on: false},
		{name: "exporter zipkin", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL "grpc"`},
		{name: "traces protocol grpc", cfg: TelemetryConfig{OTLPEndpoint: "http://c:4318"}, env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true, url: "http://a:4318/v1/traces"},
		{name: "bad env endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planExport(tc.cfg, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("planExport = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || p.on != tc.on || p.url != tc.url {
				t.Fatalf("planExport = on %v, url %q, err %v; want on %v, url %q", p.on, p.url, err, tc.on, tc.url)
			}
		})
	}
}

func TestTelemetryConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"telemetry:\n  otlp_endpoint: localhost:4318\n", `config: telemetry.otlp_endpoint: scheme "localhost": want http or https`},
		{"telemetry:\n  otlp_endpoint: http:///v1\n", "config: telemetry.otlp_endpoint: want http(s)://host:port"},
		{"telemetry:\n  sample_ratio: 1.5\n", "config: telemetry.sample_ratio 1.5: want 0 (default) to 1"},
		{"telemetry:\n  endpoint: http://x:4318\n", "config: unknown key telemetry.endpoint (line 2)"},
	} {
		if _, err := parseConfig([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
