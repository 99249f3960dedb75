// Package barehook is the baseline the bridge's delivery benchmarks are
// measured against: a bare net/http client that sends exactly the
// requests the bridge sends, and nothing around them.
//
// A header-less client posts a body with one header; a delivery carries a
// dozen (Standard Webhooks, CloudEvents, attempt, subscription) and a
// signature, which a receiver on the same cores parses too. [Client]
// learns the headers from a delivery of the bridge itself, then per
// request copies them, makes the per-request ones afresh (id, timestamp,
// signature, time), signs with an HMAC taken from a pool and calls
// Transport.RoundTrip on a transport set as the bridge's.
package barehook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/memory"
	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/webhook"
)

// Secret is the signing secret of the benchmarks' subscriptions.
const Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// perRequest are the headers that differ from one delivery to the next.
var perRequest = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "Ce-Id", "Ce-Time"}

// addedByTransport are request headers net/http writes itself.
var addedByTransport = []string{"Host", "Content-Length", "Accept-Encoding"}

// BridgeHeaders runs a bridge on a memory broker with one subscription to
// topic name, signed with Secret, and returns the headers of its delivery
// of an event named name with payload p, without those net/http adds.
func BridgeHeaders(ctx context.Context, name pubsub.Name, p []byte) (http.Header, error) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		select {
		case got <- r.Header.Clone():
		default:
		}
	}))
	defer srv.Close()
	broker := memory.NewBroker(memory.Options{})
	defer broker.Close()
	sub, err := broker.NewSubscriber(memory.SubscriberConfig{Group: "bridge"})
	if err != nil {
		return nil, err
	}
	bridge, err := webhook.New(webhook.Config{Subscriber: sub, Publisher: broker,
		Subscriptions: []webhook.Subscription{{ID: "s0", Topic: string(name), URL: srv.URL, Secrets: webhook.Secrets{Secret}}}})
	if err != nil {
		return nil, err
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); bridge.Run(ctx) }()
	defer func() { _ = bridge.Close(); <-stopped }()
	if err := broker.Emit(ctx, pubsub.NewEvent(ctx, name, p)); err != nil {
		return nil, err
	}
	var h http.Header
	select {
	case h = <-got:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("the bridge delivered nothing in 10s")
	}
	for _, k := range addedByTransport {
		delete(h, k)
	}
	for _, k := range perRequest {
		if h.Get(k) == "" {
			return nil, fmt.Errorf("the bridge's delivery has no %s header (has %s)", k, strings.Join(slices.Sorted(maps.Keys(h)), ", "))
		}
	}
	return h, nil
}

// Client posts the bridge's requests. Its methods are safe for
// concurrent use.
type Client struct {
	static    http.Header
	key       []byte
	macs      sync.Pool
	transport *http.Transport
}

// New returns a client sending the requests the bridge sends for events
// named name with payload p, keeping perEndpoint idle connections per
// endpoint as the bridge does.
func New(ctx context.Context, name pubsub.Name, p []byte, perEndpoint int) (*Client, error) {
	h, err := BridgeHeaders(ctx, name, p)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(Secret, "whsec_"))
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost, t.MaxIdleConns, t.DisableCompression = perEndpoint, 0, true
	c := &Client{static: h, key: key, transport: t}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key) }
	return c, nil
}

// Header is what every request carries besides the per-request headers.
func (c *Client) Header() http.Header { return c.static.Clone() }

// Post sends the delivery of body as event number i to url, drains the
// answer and wants a 2xx.
func (c *Client) Post(ctx context.Context, url string, i int, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	id := "evt_" + strconv.Itoa(i)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := c.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	c.macs.Put(mac)
	req.Header = maps.Clone(c.static)
	req.Header["Webhook-Id"] = []string{id}
	req.Header["Ce-Id"] = []string{id}
	req.Header["Webhook-Timestamp"] = []string{ts}
	req.Header["Webhook-Signature"] = []string{sig}
	req.Header["Ce-Time"] = []string{now.UTC().Format(time.RFC3339Nano)}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := resp.Body.Close(); err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the sink answered %d", resp.StatusCode)
	}
	return nil
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }
