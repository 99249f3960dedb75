package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/internal/redact"
)

// Subscription says which events go to which URL, and how.
type Subscription struct {
	// ID names the subscription; unique, and used in headers, logs,
	// metrics and dead letters. Required.
	ID string `json:"id" yaml:"id"`
	// Topic is the event name to match; "*" for every event; or a prefix
	// pattern ending in ".*", such as "order.*", for every event whose
	// name starts with "order." and goes on (order.created,
	// order.refund.issued; not "order"). A "*" anywhere else is refused.
	// Required.
	Topic string `json:"topic" yaml:"topic"`
	// Filter is an expr-lang expression that must be true for an event to
	// be delivered; see the package doc for its environment.
	// default: "", every event of the topic
	Filter string `json:"filter,omitempty" yaml:"filter"`
	// URL receives a POST per delivery; http or https. Required.
	URL string `json:"url" yaml:"url"`
	// Secrets sign deliveries, each once, as Standard Webhooks asks: a
	// "whsec_" secret (the base64 of 24 to 64 bytes) adds a "v1"
	// HMAC-SHA256 signature, a "whsk_" ed25519 private key (the base64
	// of its 32-byte seed, or of the 64 bytes of seed and public key) a
	// "v1a" signature, which receivers verify with the "whpk_" public key
	// ([PublicKey]). With several, of either kind, each signs, so
	// receivers can rotate. In YAML and JSON the key is "secret", a
	// string or a list.
	// default: none, deliveries are not signed
	Secrets Secrets `json:"secret,omitempty" yaml:"secret"`
	// Headers are added to each request. Names must be HTTP tokens and
	// not one the bridge sets or HTTP manages (any webhook-* or ce-*,
	// Content-Type, Content-Length, Content-Encoding, Transfer-Encoding,
	// User-Agent, Host, Connection, TE, Trailer, Upgrade, Keep-Alive, any
	// Proxy-*, X-Correlation-Id, in any case); values must be ASCII
	// without control characters other than tab.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers"`
	// Timeout bounds each delivery, from connect to the end of the
	// response headers; at most [MaxTimeout].
	// default: the bridge's (10s)
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	// MaxAttempts is how many deliveries are tried before the event is
	// dead-lettered, the first included.
	// default: the bridge's retry policy
	MaxAttempts int `json:"max_attempts,omitempty" yaml:"max_attempts"`
	// RateLimit bounds how often deliveries of this subscription go,
	// across replicas with a [RedisRateLimiter]; see [Config.RateLimiter].
	// default: nil, no limit of its own
	RateLimit *RateLimit `json:"rate_limit,omitempty" yaml:"rate_limit"`
	// Disabled keeps the subscription without matching anything.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled"`
}

// Validate checks the subscription without compiling its filter; errors
// name the subscription and the field (a secret by its position, counting
// from 1; a header by its name), never a secret's value.
func (s Subscription) Validate() error {
	if s.ID == "" {
		return errors.New("webhook: subscription without an id")
	}
	if err := checkSubscriptionID(s.ID); err != nil {
		// It travels in the Webhook-Subscription header, in URLs of the
		// admin API and in metric labels.
		return fmt.Errorf("webhook: subscription %q: id: %v", s.ID, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("webhook: subscription %q: %s", s.ID, fmt.Sprintf(format, args...))
	}
	if s.Topic == "" {
		return fail(`topic is empty (use "*" for every event)`)
	}
	if err := checkTopic(s.Topic); err != nil {
		return fail("topic %q: %v", s.Topic, err)
	}
	u, err := url.Parse(s.URL)
	switch {
	case s.URL == "":
		return fail("url is empty")
	case err != nil:
		return fail("url %s does not parse", redact.Endpoint(s.URL))
	case u.Scheme != "http" && u.Scheme != "https":
		return fail("url %q: scheme must be http or https", redact.Endpoint(s.URL))
	case u.Hostname() == "":
		return fail("url %q has no host", redact.Endpoint(s.URL))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail("url %q: port %s is not between 1 and 65535", redact.Endpoint(s.URL), p)
		}
	}
	for i, sec := range s.Secrets {
		if err := checkSecret(sec); err != nil {
			return fail("secret %d: %v", i+1, err)
		}
	}
	seen := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) { // the same error every time
		if other, dup := seen[http.CanonicalHeaderKey(k)]; dup {
			return fail("headers %q and %q are the same header", other, k)
		}
		seen[http.CanonicalHeaderKey(k)] = k
		if v := s.Headers[k]; strings.TrimSpace(v) != v {
			return fail("header %q: the value has spaces or tabs around it, which HTTP drops", k)
		}
		if err := checkHeaderName(k); err != nil {
			return fail("header %q: %v", k, err)
		}
		if reservedHeader(k) {
			return fail("header %q is set by the bridge or by HTTP itself; a subscription may not set it", k)
		}
		if err := checkHeaderValue(s.Headers[k], true); err != nil {
			return fail("header %q: %v", k, err)
		}
	}
	if s.Timeout < 0 || time.Duration(s.Timeout) > MaxTimeout {
		return fail("timeout %s is outside 0 to %s", time.Duration(s.Timeout), MaxTimeout)
	}
	if s.MaxAttempts < 0 {
		return fail("max_attempts %d is negative", s.MaxAttempts)
	}
	if s.RateLimit != nil {
		if err := s.RateLimit.Validate(); err != nil {
			return fail("rate_limit: %v", err)
		}
	}
	return nil
}

// PublicKeys returns the "whpk_" public key of each "whsk_" private key
// among the secrets, in their order: what receivers verify the "v1a"
// signatures with, and safe to show. Keys that do not decode are left
// out ([Subscription.Validate] refuses them).
func (s Subscription) PublicKeys() []string {
	var out []string
	for _, sec := range s.Secrets {
		if IsPrivateKey(sec) {
			if pk, err := PublicKey(sec); err == nil {
				out = append(out, pk)
			}
		}
	}
	return out
}

// clone returns s with its own copies of the secrets, headers and rate
// limit, so that a caller editing what it got in place changes nothing
// the bridge holds.
func (s Subscription) clone() Subscription {
	if s.Secrets != nil {
		s.Secrets = append(Secrets{}, s.Secrets...)
	}
	if s.Headers != nil {
		s.Headers = maps.Clone(s.Headers)
	}
	if s.RateLimit != nil {
		l := *s.RateLimit
		s.RateLimit = &l
	}
	return s
}

// MaxSubscriptionIDLen is the longest subscription id, in bytes.
const MaxSubscriptionIDLen = 128

// checkSubscriptionID accepts 1 to MaxSubscriptionIDLen ASCII letters,
// digits, '-', '_' and '.', other than "." and "..".
func checkSubscriptionID(id string) error {
	switch {
	case len(id) > MaxSubscriptionIDLen:
		return fmt.Errorf("%d bytes, at most %d", len(id), MaxSubscriptionIDLen)
	case id == "." || id == "..":
		return errors.New(`"." and ".." cannot be addressed in a URL`)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !idByte(c) && c != '.' {
			return fmt.Errorf("byte %d is %q: an id is made of ASCII letters, digits, '-', '_' and '.'", i, c)
		}
	}
	return nil
}

// MaxTimeout is the longest delivery timeout a subscription may set. The
// bridge handles an event within a deadline (webhook-bridge sets its
// backend's handler deadline to twice this), and a delivery must end well
// inside it.
const MaxTimeout = 5 * time.Minute

// Secrets are signing secrets; they read from one string or a list, and
// never print.
type Secrets []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *Secrets) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = splitSecrets(one)
		if *s == nil {
			*s = Secrets{} // given, as none: not the same as not given
		}
		return nil
	}
	many := []string{} // present but empty stays non-nil: "no secrets", not "not given"
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("secret must be a string or a list of strings")
	}
	*s = many
	return nil
}

// UnmarshalYAML accepts a string or a list of strings.
func (s *Secrets) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = splitSecrets(n.Value)
		return nil
	}
	var many []string
	if err := n.Decode(&many); err != nil {
		return fmt.Errorf("line %d: secret must be a string or a list of strings", n.Line)
	}
	*s = many
	return nil
}

// String hides the secrets.
func (s Secrets) String() string { return fmt.Sprintf("[%d secret(s) redacted]", len(s)) }

// GoString hides the secrets from %#v too.
func (s Secrets) GoString() string { return s.String() }

// MarshalJSON writes how many secrets there are, never their values.
func (s Secrets) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func splitSecrets(v string) Secrets {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	return strings.Fields(v)
}

// Duration is a time.Duration written as Go duration text ("5s", "2h")
// in YAML and JSON.
type Duration time.Duration

// MarshalText writes the duration as text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go duration text, and a number that is zero
// written any way (0.0, 00, 0x0) as zero, as a JSON Schema reads it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil && isZeroNumber(string(b)) {
		v, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("duration %q: want Go duration text such as 5s or 2h", b)
	}
	*d = Duration(v)
	return nil
}

// isZeroNumber reports whether s is a number, in YAML's or Go's
// notations, whose value is zero.
func isZeroNumber(s string) bool {
	s = strings.ReplaceAll(s, "_", "")
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f == 0
	}
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		return n == 0
	}
	return false
}

// checkTopic refuses a "*" other than the whole topic or a final ".*".
func checkTopic(topic string) error {
	if topic == "*" {
		return nil
	}
	rest := strings.TrimSuffix(topic, ".*")
	if strings.Contains(rest, "*") {
		return errors.New(`"*" may only be the whole topic ("*", every event) or end it after a dot ("order.*", every name starting with "order.")`)
	}
	if rest == "" {
		return errors.New(`a prefix pattern needs a prefix before ".*"`)
	}
	return nil
}

// topicPrefix returns the prefix of a pattern topic ("order." for
// "order.*"), or "" for a topic that is not one.
func topicPrefix(topic string) string {
	if len(topic) > 2 && strings.HasSuffix(topic, ".*") {
		return topic[:len(topic)-1]
	}
	return ""
}

// topicMatches reports whether an event named name is of topic.
func topicMatches(topic, name string) bool {
	if topic == "*" || topic == name {
		return true
	}
	p := topicPrefix(topic)
	return p != "" && len(name) > len(p) && strings.HasPrefix(name, p)
}
