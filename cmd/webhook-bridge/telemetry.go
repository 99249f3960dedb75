package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/switchyard-go/switchyard/internal/redact"
)

// TelemetryConfig is the telemetry section: OpenTelemetry traces exported
// over OTLP/HTTP (protobuf). The standard OTEL_* environment variables are
// honoured; see docs/webhook-bridge.md#tracing.
type TelemetryConfig struct {
	// OTLPEndpoint is the base URL of an OTLP/HTTP receiver, such as
	// http://127.0.0.1:4318; spans go to its /v1/traces. Setting it turns
	// export on; it wins over OTEL_EXPORTER_OTLP_ENDPOINT and
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. default: "", export is on only
	// when one of those variables is set
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// ServiceName is the resource's service.name. default:
	// OTEL_SERVICE_NAME, else webhook-bridge
	ServiceName string `yaml:"service_name"`
	// SampleRatio samples that share of the traces that start here (0 to
	// 1); a trace continued from a caller follows the caller's choice.
	// default: 0, the SDK's sampler: parentbased_always_on, or what
	// OTEL_TRACES_SAMPLER says
	SampleRatio float64 `yaml:"sample_ratio"`
}

// defaultServiceName is service.name when neither the config nor
// OTEL_SERVICE_NAME gives one.
const defaultServiceName = "webhook-bridge"

// telemetryFlushTimeout bounds the export of the spans left at exit.
const telemetryFlushTimeout = 5 * time.Second

// validate names the key at fault.
func (t TelemetryConfig) validate() error {
	if t.OTLPEndpoint != "" {
		if _, err := tracesURL(t.OTLPEndpoint); err != nil {
			return fmt.Errorf("config: telemetry.otlp_endpoint: %v", err)
		}
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		return fmt.Errorf("config: telemetry.sample_ratio %v: want 0 (default) to 1", t.SampleRatio)
	}
	return nil
}

// tracesURL is the URL spans are sent to for the base URL endpoint.
func tracesURL(endpoint string) (string, error) {
	u, err := checkOTLPURL(endpoint)
	if err != nil {
		return "", err
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	u.RawPath = ""
	return u.String(), nil
}

// checkOTLPURL parses an OTLP/HTTP URL: http(s), a host, no query or
// fragment.
func checkOTLPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q: want http or https (OTLP over HTTP)", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("want http(s)://host:port")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("want no query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %s: want 1 to 65535", p)
		}
	}
	return u, nil
}

// exportPlan is whether and where spans are exported, from the config
// and the environment.
type exportPlan struct {
	on     bool
	why    string // when off
	url    string // spans go to; "" when the exporter works it out from the environment
	source string // the key or variable that turned export on
}

// planExport decides from t and getenv (os.Getenv).
func planExport(t TelemetryConfig, getenv func(string) string) (exportPlan, error) {
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); strings.EqualFold(v, "true") {
		return exportPlan{why: "OTEL_SDK_DISABLED=true"}, nil
	}
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "", "otlp":
	case "none":
		return exportPlan{why: "OTEL_TRACES_EXPORTER=none"}, nil
	default:
		return exportPlan{}, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER %q: webhook-bridge exports with otlp (or none)", v)
	}
	p := exportPlan{on: true}
	switch {
	case t.OTLPEndpoint != "":
		p.url, _ = tracesURL(t.OTLPEndpoint) // checked by validate
		p.source = "telemetry.otlp_endpoint"
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		// Used as it is, path included.
		v := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if _, err := checkOTLPURL(v); err != nil {
			return exportPlan{}, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %v", err)
		}
		p.url, p.source = v, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		base, err := tracesURL(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if err != nil {
			return exportPlan{}, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_ENDPOINT: %v", err)
		}
		p.url, p.source = base, "OTEL_EXPORTER_OTLP_ENDPOINT"
	default:
		return exportPlan{why: "no telemetry.otlp_endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			if v != "http/protobuf" {
				return exportPlan{}, fmt.Errorf("telemetry: %s %q: webhook-bridge exports OTLP over HTTP with protobuf only (http/protobuf)", name, v)
			}
			break // the traces variable wins over the general one
		}
	}
	if err := checkOTELVariables(getenv); err != nil {
		return exportPlan{}, err
	}
	return p, nil
}

// telemetry is tracing as set up at start.
type telemetry struct {
	announce func() // logs whether tracing is on, and where spans go
	// stop flushes and stops the export, by the deadline when there is
	// one, and within telemetryFlushTimeout.
	stop func(deadline time.Time)
}

// startTelemetry sets up tracing as cfg and the environment say. Its stop
// flushes and stops it within telemetryFlushTimeout, logging what it could
// not send; its announce logs the start line (after the backend is open,
// so that a bridge that cannot start says only why). With export on,
// it sets the global TracerProvider and propagator (W3C Trace Context and
// Baggage), which the backend, the bridge and the API use; with it off it
// sets nothing, and trace context received is still passed on.
func startTelemetry(ctx context.Context, cfg *Config, log *slog.Logger) (*telemetry, error) {
	plan, err := planExport(cfg.Telemetry, os.Getenv)
	if err != nil {
		return nil, err
	}
	if !plan.on {
		return &telemetry{
			announce: func() {
				log.Info("webhook-bridge: tracing off: received trace context is passed on, no span is exported", "why", plan.why)
			},
			stop: func(time.Time) {},
		}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(plan.url))
	if err != nil {
		return nil, fmt.Errorf("telemetry: the OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(defaultServiceName), semconv.ServiceVersion(versionLine()),
			semconv.ServiceInstanceID(consumerName(cfg))),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: the resource (OTEL_RESOURCE_ATTRIBUTES?): %w", err)
	}
	if cfg.Telemetry.ServiceName != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(cfg.Telemetry.ServiceName)))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if r := cfg.Telemetry.SampleRatio; r > 0 {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	// What the SDK and the exporter cannot report otherwise (a batch the
	// collector refused, say) goes to the bridge's log, not to stderr
	// unstructured.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("webhook-bridge: tracing", "err", err)
	}))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	service, _ := res.Set().Value(semconv.ServiceNameKey)
	attrs := []any{"endpoint", redact.URL(plan.url), "from", plan.source, "service_name", service.AsString()}
	if r := cfg.Telemetry.SampleRatio; r > 0 {
		attrs = append(attrs, "sample_ratio", strconv.FormatFloat(r, 'g', -1, 64))
	}
	return &telemetry{
		announce: func() { log.Info("webhook-bridge: tracing on: spans exported over OTLP/HTTP", attrs...) },
		stop: func(deadline time.Time) {
			if limit := time.Now().Add(telemetryFlushTimeout); deadline.IsZero() || deadline.After(limit) {
				deadline = limit
			}
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			if err := tp.Shutdown(ctx); err != nil {
				log.Warn("webhook-bridge: tracing: spans not exported at exit", "err", err, "timeout", telemetryFlushTimeout)
			}
		},
	}, nil
}
