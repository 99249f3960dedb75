package deploy

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/internal/bridgetest"
	"github.com/switchyard-go/switchyard/webhook"
)

// schemaPath is the config schema, from this module's directory.
const schemaPath = "../docs/config.schema.json"

// configSchema compiles docs/config.schema.json after checking it against
// the draft 2020-12 meta-schema.
func configSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	if m, _ := doc.(map[string]any); m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf(`%s: "$schema" is %v, want the draft 2020-12 meta-schema`, schemaPath, m["$schema"])
	}
	meta, err := jsonschema.NewCompiler().Compile("https://json-schema.org/draft/2020-12/schema")
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.Validate(doc); err != nil {
		t.Fatalf("%s is not a valid draft 2020-12 schema: %v", schemaPath, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatalf("%s does not compile: %v", schemaPath, err)
	}
	return sch
}

// validateYAML validates a YAML config, as written (before ${NAME} is
// replaced), against sch.
func validateYAML(sch *jsonschema.Schema, text string) error {
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		return err
	}
	if v == nil {
		v = map[string]any{}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return sch.Validate(doc)
}

var (
	bridgeOnce   sync.Once
	bridgeBinary string
	bridgeErr    error
)

// bridge builds cmd/webhook-bridge once for the tests of this package;
// the binary stays in the temporary directory for the life of the
// process (TestMain-free packages have no end hook; it is one file).
func bridge(t *testing.T) string {
	t.Helper()
	bridgeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploy-bridge-")
		if err != nil {
			bridgeErr = err
			return
		}
		bridgeBinary = filepath.Join(dir, "webhook-bridge")
		bridgeErr = bridgetest.Build("..", bridgeBinary)
	})
	if bridgeErr != nil {
		t.Fatal(bridgeErr)
	}
	return bridgeBinary
}

// configCheck runs `webhook-bridge config check` on text with env added
// to the environment, and returns its exit status and output.
func configCheck(t *testing.T, text string, env []string) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bridge(t), "config", "check", path)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	case err != nil:
		t.Fatal(err)
	}
	return 0, string(out)
}

// exampleConfig is a config found in the repository.
type exampleConfig struct {
	where, text string
}

// exampleConfigs finds the example configs: the YAML files of examples/
// and cmd/webhook-bridge/testdata, and the fenced yaml blocks of
// README.md, docs/webhook-bridge.md and docs/deploying.md that are whole configs (a mapping
// whose top-level keys are all config keys). It returns the blocks it
// skipped, with why.
func exampleConfigs(t *testing.T, topKeys map[string]bool) (found []exampleConfig, skipped []string) {
	t.Helper()
	var files []string
	for _, dir := range []string{"../examples", "../cmd/webhook-bridge/testdata"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				files = append(files, path)
			}
			return err
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, exampleConfig{strings.TrimPrefix(path, "../"), string(b)})
	}
	for _, doc := range []string{"../README.md", "../docs/webhook-bridge.md", "../docs/deploying.md"} {
		for _, block := range yamlBlocks(t, doc) {
			var v any
			err := yaml.Unmarshal([]byte(block.text), &v)
			m, isMap := v.(map[string]any)
			why := ""
			switch {
			case err != nil:
				why = "not YAML on its own: " + strings.ReplaceAll(err.Error(), "\n", " ")
			case v == nil:
				why = "comments only"
			case !isMap:
				why = fmt.Sprintf("a %T, not a mapping: a piece of a config", v)
			default:
				for k := range m {
					if !topKeys[k] {
						why = fmt.Sprintf("top-level key %q is no config key: a piece of a config", k)
						break
					}
				}
			}
			if why != "" {
				skipped = append(skipped, block.where+": "+why)
				continue
			}
			found = append(found, block)
		}
	}
	return found, skipped
}

// yamlBlocks returns the fenced ```yaml blocks of the Markdown file path.
func yamlBlocks(t *testing.T, path string) []exampleConfig {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []exampleConfig
	var cur *exampleConfig
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case cur == nil && (strings.TrimSpace(text) == "```yaml" || strings.TrimSpace(text) == "```yml"):
			cur = &exampleConfig{where: fmt.Sprintf("%s:%d", strings.TrimPrefix(path, "../"), line)}
		case cur != nil && strings.TrimSpace(text) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += text + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// envRef is a ${NAME} without a default, which must be set.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// fileKey is a key naming a file the loader reads, and its value.
var fileKey = regexp.MustCompile(`(?m)^(\s*(?:ca_file|cert_file|key_file):\s*)(\S+)`)

// exampleEnv gives the variables the examples reference without a
// default a value of the kind they hold.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	private, _, err := webhook.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"REDIS_PASSWORD":         "example-password",
		"SENTINEL_PASSWORD":      "example-sentinel-password",
		"BRIDGE_JWT_SECRET":      "example-jwt-secret",
		"ORDERS_SIGNING_KEY":     private,
		"WEBHOOK_SECRET":         "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"REDIS_URL":              "redis://127.0.0.1:6379/0",
		"POD_NAME":               "webhook-bridge-7d9f8-abcde",
		"JWT_SECRET":             "example-jwt-secret",
		"ADMIN_TOKEN":            "example-admin-token",
		"BILLING_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
}

// tlsFiles writes a self-signed CA certificate and its key, PEM, for the
// examples' TLS file keys, which the loader reads.
func tlsFiles(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// schemaTopKeys are the top-level properties of the schema.
func schemaTopKeys(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for k := range s.Properties {
		keys[k] = true
	}
	return keys
}

// TestExampleConfigs checks that every example config in the repository
// validates against the schema and is accepted by the bridge.
func TestExampleConfigs(t *testing.T) {
	sch := configSchema(t)
	examples, skipped := exampleConfigs(t, schemaTopKeys(t))
	for _, s := range skipped {
		t.Logf("skipped %s", s)
	}
	if len(examples) < 8 {
		t.Fatalf("found %d example configs; the search misses some", len(examples))
	}
	env := exampleEnv(t)
	cert, key := tlsFiles(t)
	for _, ex := range examples {
		t.Run(ex.where, func(t *testing.T) {
			if !strings.Contains(ex.where, ".md:") && !strings.Contains(ex.text, "# yaml-language-server: $schema=") {
				t.Errorf("%s has no `# yaml-language-server: $schema=` line pointing editors at the schema", ex.where)
			}
			if err := validateYAML(sch, ex.text); err != nil {
				t.Errorf("the schema refuses %s: %v", ex.where, err)
			}
			var vars []string
			for _, m := range envRef.FindAllStringSubmatch(ex.text, -1) {
				v, ok := env[m[1]]
				if !ok {
					t.Fatalf("%s references ${%s}: give it a value in exampleEnv", ex.where, m[1])
				}
				vars = append(vars, m[1]+"="+v)
			}
			// The loader reads the TLS files a config names.
			text := fileKey.ReplaceAllStringFunc(ex.text, func(s string) string {
				m := fileKey.FindStringSubmatch(s)
				if strings.Contains(m[1], "key_file") {
					return m[1] + key
				}
				return m[1] + cert
			})
			if code, out := configCheck(t, text, vars); code != 0 {
				t.Errorf("webhook-bridge config check refuses %s (exit status %d):\n%s", ex.where, code, out)
			} else if !strings.Contains(out, ": ok\n") {
				t.Errorf("webhook-bridge config check says of %s:\n%s", ex.where, out)
			}
		})
	}
}

// TestBadConfigs checks that the schema and the bridge both refuse
// configs that are wrong, the bridge naming the key at fault.
func TestBadConfigs(t *testing.T) {
	sch := configSchema(t)
	sub := "subscriptions:\n  - id: orders\n    topic: order.created\n    url: https://hooks.example.com/orders\n"
	if err := validateYAML(sch, sub); err != nil {
		t.Fatalf("the schema refuses the base of the bad configs: %v", err)
	}
	if code, out := configCheck(t, sub, nil); code != 0 {
		t.Fatalf("the bridge refuses the base of the bad configs: %s", out)
	}
	for _, tc := range []struct {
		name, text, key string
	}{
		{"unknown top-level key", sub + "listen_addr: 127.0.0.1:8080\n", "listen_addr"},
		{"unknown key in a subscription", sub + "    filtr: data.total > 5\n", "subscriptions[0].filtr"},
		{"unknown key in a rate limit", sub + "    rate_limit: {per_second: 5, brust: 10}\n", "subscriptions[0].rate_limit.brust"},
		{"unknown key in redis.tls", "redis:\n  url: rediss://127.0.0.1:6379\n  tls:\n    ca: x\n", "redis.tls.ca"},
		{"wrong type: a word for a number", "concurrency: lots\n", "concurrency"},
		{"wrong type: a quoted number", "retry:\n  max_attempts: \"5\"\n", "retry.max_attempts"},
		{"wrong type: a list for a string", sub + "    url: [https://a.example]\n", "subscriptions[0].url"},
		{"wrong type: a number for a duration", sub + "    timeout: 5\n", "subscriptions[0].timeout"},
		{"wrong type: ${NAME} for a number", "max_batch: ${MAX_BATCH}\n", "max_batch"},
		{"bad enum: start", "start: middle\n", "start"},
		{"bad enum: log_level", "log_level: verbose\n", "log_level"},
		{"out of range: partitions", "partitions: 1000\n", "partitions"},
		{"out of range: sample_ratio", "telemetry:\n  sample_ratio: 2\n", "telemetry.sample_ratio"},
		{"bad topic", sub + "    topic: order.*.created\n", "topic"},
		{"a public key as a secret", sub + "    secret: whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", "subscriptions[0]"},
		{"rate limit without per_second", "endpoints:\n  - url: https://hooks.example.com\n    rate_limit: {burst: 5}\n", "per_second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if strings.Count(text, "    url:") > 1 || strings.Count(text, "    topic:") > 1 {
				// A later key overrides the base's: replace it instead.
				text = replaceSubKey(sub, tc.text)
			}
			var invalid *jsonschema.ValidationError
			if err := validateYAML(sch, text); !errors.As(err, &invalid) {
				t.Errorf("the schema does not refuse (%v):\n%s", err, text)
			}
			code, out := configCheck(t, text, []string{"MAX_BATCH=10"})
			if code != 1 {
				t.Errorf("webhook-bridge config check exits %d, want 1, for:\n%s\n%s", code, text, out)
			}
			if !strings.Contains(out, tc.key) {
				t.Errorf("the bridge's error does not name %s: %s", tc.key, out)
			}
		})
	}
}

// replaceSubKey returns base with the subscription keys that extra sets
// replaced by extra's values (YAML refuses a key given twice).
func replaceSubKey(base, extended string) string {
	extra := strings.TrimPrefix(extended, base)
	key, _, _ := strings.Cut(strings.TrimSpace(extra), ":")
	lines := strings.Split(strings.TrimSuffix(base, "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), key+":") })
	return strings.Join(lines, "\n") + "\n" + extra
}
