package interop

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// delivery is one request a receiver got from the bridge, as the receiver
// saw it.
type delivery struct {
	// via is "go" (a net/http server in this process) or "node" (the
	// receiver in node/receiver.mjs).
	via    string
	path   string
	header http.Header
	body   []byte
	// status is what the receiver answered.
	status int
	// node holds the Node receiver's verdicts, one per secret of the
	// subscription: on the request it got, or, for deliveries to the Go
	// receiver, on the same bytes sent to it afterwards.
	node []nodeCheck
	// nodeDecoded is decodeURIComponent of ce-id, ce-type and
	// x-correlation-id in the Node receiver.
	nodeDecoded map[string]string
	// nodeV1a holds the Node receiver's v1a verdicts, one per public key
	// of the subscription.
	nodeV1a []nodeV1aCheck
}

// nodeV1aCheck is what the Node receiver said of a delivery's v1a
// signatures with one whpk_ public key: "ok" or the error thrown.
type nodeV1aCheck struct {
	Key int `json:"key"`
	// NodeCrypto is the v1a algorithm with node:crypto's ed25519.
	NodeCrypto string `json:"node_crypto"`
	// StandardWebhooks is npm standardwebhooks given the whpk_ key, which
	// its released versions cannot use.
	StandardWebhooks string `json:"standardwebhooks"`
}

func (d delivery) subscription() string { return d.header.Get("Webhook-Subscription") }

func (d delivery) String() string {
	return fmt.Sprintf("%s delivery to %s (subscription %q, attempt %s, webhook-id %q)",
		d.via, d.path, d.subscription(), d.header.Get("Webhook-Attempt"), d.header.Get("Webhook-Id"))
}

// nodeCheck is what the Node receiver's verifiers said of a delivery with
// one secret: "ok" or the error they threw.
type nodeCheck struct {
	Secret int `json:"secret"`
	// StandardWebhooks is standardwebhooks' verify(body, req.headers,
	// {jsonParse: false}) on the raw body Buffer.
	StandardWebhooks string `json:"standardwebhooks"`
	// StandardWebhooksJSON is its default verify(body, req.headers), which
	// parses the body as JSON once the signature matched.
	StandardWebhooksJSON string `json:"standardwebhooks_json"`
	// Svix is svix's Webhook.verify(body, req.headers).
	Svix string `json:"svix"`
	// NodeCrypto is the Standard Webhooks algorithm on the raw bytes with
	// node:crypto, as docs/webhook-bridge.md shows it.
	NodeCrypto string `json:"node_crypto"`
	// HeadersObject is standardwebhooks' verify given a Fetch API Headers
	// object, which it cannot read.
	HeadersObject string `json:"headers_object"`
	// FetchStyle is both libraries given Buffer.from(the body's
	// ArrayBuffer) and Object.fromEntries(a Headers object).
	FetchStyle string `json:"fetch_style"`
	// Uint8Array is standardwebhooks' verify given the body as a plain
	// Uint8Array, which it refuses.
	Uint8Array string `json:"uint8array"`
	// Restringified is standardwebhooks' verify given
	// JSON.stringify(JSON.parse(body)), as behind a JSON body parser.
	Restringified string `json:"restringified"`
}

// deliveries collects the requests of every receiver of a test and lets
// it wait for them without sleeping.
type deliveries struct {
	mu      sync.Mutex
	all     []delivery
	changed chan struct{}
}

func newDeliveries() *deliveries { return &deliveries{changed: make(chan struct{})} }

func (ds *deliveries) add(d delivery) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.all = append(ds.all, d)
	close(ds.changed)
	ds.changed = make(chan struct{})
}

// waitUntil blocks until cond holds for the deliveries so far, or until
// timeout; it returns the deliveries and whether cond held.
func (ds *deliveries) waitUntil(timeout time.Duration, cond func([]delivery) bool) ([]delivery, bool) {
	deadline := time.After(timeout)
	for {
		ds.mu.Lock()
		all, ch := append([]delivery(nil), ds.all...), ds.changed
		ds.mu.Unlock()
		if cond(all) {
			return all, true
		}
		select {
		case <-ch:
		case <-deadline:
			return all, false
		}
	}
}

// failFirst reports whether a receiver answers 500 to this request: the
// first request with its webhook-id on a path starting with /fail-first.
type failFirst struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (f *failFirst) fail(path, webhookID string) bool {
	if !strings.HasPrefix(path, "/fail-first") {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	key := path + " " + webhookID
	if f.seen[key] {
		return false
	}
	f.seen[key] = true
	return true
}

// startGoReceiver starts a net/http server on a loopback port that records
// every request in ds, answering 500 to the first attempt of each message
// on /fail-first paths and 204 otherwise.
func startGoReceiver(t *testing.T, ds *deliveries) string {
	t.Helper()
	var ff failFirst
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("Go receiver: reading a body: %v", err)
		}
		status := http.StatusNoContent
		if ff.fail(r.URL.Path, r.Header.Get("Webhook-Id")) {
			status = http.StatusInternalServerError
		}
		ds.add(delivery{via: "go", path: r.URL.Path, header: r.Header.Clone(), body: body, status: status})
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// nodeLine is one line the Node receiver prints.
type nodeLine struct {
	Listening int               `json:"listening"`
	Reply     int               `json:"reply"`
	Path      string            `json:"path"`
	Status    int               `json:"status"`
	Headers   [][2]string       `json:"headers"`
	Body      []byte            `json:"body"`
	Checks    []nodeCheck       `json:"checks"`
	V1a       []nodeV1aCheck    `json:"v1a"`
	Decoded   map[string]string `json:"decoded"`
}

// nodeAsk asks the Node receiver to check a delivery made elsewhere.
type nodeAsk struct {
	Verify  int         `json:"verify"`
	Headers [][2]string `json:"headers"`
	Body    []byte      `json:"body"`
}

// nodeReceiver is node/receiver.mjs, running.
type nodeReceiver struct {
	url string

	mu      sync.Mutex
	stdin   io.WriteCloser
	seq     int
	replies map[int]chan nodeLine
	exited  chan struct{}
}

// startNodeReceiver runs node/receiver.mjs with the secrets of each
// subscription; its deliveries go to ds.
func startNodeReceiver(t *testing.T, ds *deliveries, secrets map[string][]string) *nodeReceiver {
	t.Helper()
	return startNodeReceiverWithKeys(t, ds, secrets, nil)
}

// startNodeReceiverWithKeys is startNodeReceiver with the whpk_ public
// keys of each subscription too, for its v1a verdicts.
func startNodeReceiverWithKeys(t *testing.T, ds *deliveries, secrets, publicKeys map[string][]string) *nodeReceiver {
	t.Helper()
	conf, err := json.Marshal(secrets)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := json.Marshal(publicKeys)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(nodeDir, "receiver.mjs"))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "RECEIVER_SECRETS="+string(conf), "RECEIVER_PUBLIC_KEYS="+string(keys))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Node receiver: %v", err)
	}
	n := &nodeReceiver{stdin: stdin, replies: map[int]chan nodeLine{}, exited: make(chan struct{})}
	port := make(chan int, 1)
	go func() {
		defer close(n.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l nodeLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("Node receiver printed %q: %v", sc.Text(), err)
				continue
			}
			switch {
			case l.Listening != 0:
				port <- l.Listening
			case l.Reply != 0:
				n.mu.Lock()
				ch := n.replies[l.Reply]
				delete(n.replies, l.Reply)
				n.mu.Unlock()
				if ch != nil {
					ch <- l
				}
			default:
				ds.add(delivery{via: "node", path: l.Path, header: fromNodeHeaders(t, l.Headers), body: l.Body,
					status: l.Status, node: l.Checks, nodeDecoded: l.Decoded, nodeV1a: l.V1a})
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close() // the receiver exits when its stdin ends
		select {
		case <-n.exited:
		case <-time.After(wait):
			_ = cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("Node receiver stderr:\n%s", stderr.String())
		}
	})
	select {
	case p := <-port:
		n.url = fmt.Sprintf("http://127.0.0.1:%d", p)
		return n
	case <-n.exited:
		t.Fatalf("the Node receiver exited before listening:\n%s", stderr.String())
	case <-time.After(wait):
		t.Fatalf("the Node receiver did not listen within %s:\n%s", wait, stderr.String())
	}
	return nil
}

// check has the Node receiver verify a delivery that reached another
// receiver, with the headers as Node's HTTP parser would give them, and
// fills in its verdicts.
func (n *nodeReceiver) check(d *delivery) error {
	n.mu.Lock()
	n.seq++
	seq, ch := n.seq, make(chan nodeLine, 1)
	n.replies[seq] = ch
	ask := nodeAsk{Verify: seq, Body: d.body}
	for name, values := range d.header {
		for _, v := range values {
			ask.Headers = append(ask.Headers, [2]string{name, base64.StdEncoding.EncodeToString([]byte(v))})
		}
	}
	line, err := json.Marshal(ask)
	if err == nil {
		_, err = n.stdin.Write(append(line, '\n'))
	}
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("asking the Node receiver: %w", err)
	}
	select {
	case l := <-ch:
		d.node, d.nodeDecoded, d.nodeV1a = l.Checks, l.Decoded, l.V1a
		return nil
	case <-n.exited:
		return errors.New("the Node receiver exited")
	case <-time.After(wait):
		return fmt.Errorf("no answer from the Node receiver within %s", wait)
	}
}

// fromNodeHeaders rebuilds the header bytes the Node receiver got.
func fromNodeHeaders(t *testing.T, raw [][2]string) http.Header {
	h := http.Header{}
	for _, kv := range raw {
		v, err := base64.StdEncoding.DecodeString(kv[1])
		if err != nil {
			t.Errorf("Node receiver: header %s: %v", kv[0], err)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(kv[0]), string(v))
	}
	return h
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
