package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// checkOTELVariables refuses, naming the variable, the OTEL_* values that
// the SDK and the OTLP exporter would only print a line about and then
// ignore: a sampler it does not know, headers that do not parse (the
// collector's credentials would be left out), certificate files it cannot
// read (the export would trust the wrong CA, or send no client
// certificate).
func checkOTELVariables(getenv func(string) string) error {
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")); v {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
			if r, err := strconv.ParseFloat(arg, 64); err != nil || !(r >= 0 && r <= 1) {
				return fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
			}
		}
	default:
		return fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or their parentbased_ forms", v)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if err := checkHeaders(getenv(name)); err != nil {
			return fmt.Errorf("telemetry: %s: %v", name, err)
		}
	}
	for _, name := range []string{
		"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
	} {
		if path := getenv(name); path != "" {
			if _, err := os.ReadFile(path); err != nil {
				return fmt.Errorf("telemetry: %s: %v", name, err)
			}
		}
	}
	return nil
}

// checkHeaders checks a W3C Baggage-like list of key=value pairs, values
// URL-encoded, as the OTLP exporter's headers variables hold. Values are
// never shown: they are credentials.
func checkHeaders(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for i, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("entry %d is not key=value", i+1)
		}
		if _, err := url.PathUnescape(strings.TrimSpace(k)); err != nil {
			return fmt.Errorf("entry %d: the key is not URL-encoded text", i+1)
		}
		if _, err := url.PathUnescape(strings.TrimSpace(val)); err != nil {
			return fmt.Errorf("entry %d (%s): the value is not URL-encoded text", i+1, strings.TrimSpace(k))
		}
	}
	return nil
}
