package webhookhttp_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/httpsink"
	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// Bad rate limits through the admin API are refused with 400, the
// subscription named, and nothing stored.
func TestAdversary3APIRateLimitRefusedNamed(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin})
	for name, rl := range map[string]string{
		"zero rate":         `{"per_second": 0}`,
		"negative rate":     `{"per_second": -1}`,
		"no rate":           `{"burst": 5}`,
		"empty":             `{}`,
		"below one an hour": `{"per_second": 0.0001}`,
		"above the max":     `{"per_second": 2e6}`,
		"negative burst":    `{"per_second": 1, "burst": -1}`,
		"huge burst":        `{"per_second": 1, "burst": 1000001}`,
		"fractional burst":  `{"per_second": 1, "burst": 1.5}`,
		"string rate":       `{"per_second": "5"}`,
		"unknown field":     `{"per_second": 1, "per_minute": 5}`,
	} {
		id := "rl-" + strings.ReplaceAll(name, " ", "-")
		status, body, ct := call(t, ts, "POST", "/v1/subscriptions", advAdmin, subBody(id, `, "rate_limit": `+rl))
		if status != http.StatusBadRequest {
			t.Errorf("%s: rate_limit %s answered %d %s, want 400", name, rl, status, body)
			continue
		}
		p := problem(t, status, body, ct)
		if !strings.Contains(p.Error, "rate_limit") && !strings.Contains(p.Error, "per_second") && !strings.Contains(p.Error, "burst") && !strings.Contains(p.Error, "per_minute") {
			t.Errorf("%s: the refusal %q does not name the field", name, p.Error)
		}
		if s, _, _ := call(t, ts, "GET", "/v1/subscriptions/"+id, advAdmin, ""); s != http.StatusNotFound {
			t.Errorf("%s: refused subscription was stored (GET %d)", name, s)
		}
	}
	// Validation failures (not JSON shape) name the subscription.
	for _, rl := range []string{`{"per_second": 0}`, `{"per_second": 1, "burst": -1}`} {
		status, body, ct := call(t, ts, "POST", "/v1/subscriptions", advAdmin, subBody("named-one", `, "rate_limit": `+rl))
		if p := problem(t, status, body, ct); !strings.Contains(p.Error, "named-one") {
			t.Errorf("rate_limit %s refused as %q, without the subscription's id", rl, p.Error)
		}
	}
}

// Paging through config and API subscriptions interleaved, with ids that
// hold '.', from odd cursors.
func TestAdversary3PagingInterleaved(t *testing.T) {
	ro := []webhook.Subscription{}
	for _, id := range []string{"a", "c.1", "e", "c-", "C"} {
		ro = append(ro, webhook.Subscription{ID: id, Topic: "t", URL: "http://127.0.0.1:1/x"})
	}
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, ReadOnly: ro})
	for _, id := range []string{"b", "c", "c.0", "d", "c..", "_", "zz.z", "-"} {
		if s, body, _ := call(t, ts, "POST", "/v1/subscriptions", advAdmin, subBody(id, "")); s != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", id, s, body)
		}
	}
	want := []string{"a", "c.1", "e", "c-", "C", "b", "c", "c.0", "d", "c..", "_", "zz.z", "-"}
	slices.Sort(want)
	page := func(q string) webhookhttp.SubscriptionPage {
		t.Helper()
		s, body, _ := call(t, ts, "GET", "/v1/subscriptions?"+q, advAdmin, "")
		if s != http.StatusOK {
			t.Fatalf("GET ?%s: %d %s", q, s, body)
		}
		var p webhookhttp.SubscriptionPage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		cursor := ""
		for i := 0; ; i++ {
			if i > len(want)+2 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			p := page(fmt.Sprintf("limit=%d&cursor=%s", limit, url.QueryEscape(cursor)))
			for _, v := range p.Subscriptions {
				got = append(got, v.ID)
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: pages hold %v, want %v", limit, got, want)
		}
	}
	// A cursor that was deleted between pages: the next page starts after it.
	if s, _, _ := call(t, ts, "DELETE", "/v1/subscriptions/c.0", advAdmin, ""); s != http.StatusNoContent {
		t.Fatalf("DELETE c.0: %d", s)
	}
	if p := page("limit=2&cursor=c.0"); len(p.Subscriptions) != 2 || p.Subscriptions[0].ID != "c.1" {
		t.Errorf("after deleted cursor c.0: %+v", p)
	}
	// A cursor past every id: empty page, no next.
	if p := page("cursor=%7F"); len(p.Subscriptions) != 0 || p.Next != "" {
		t.Errorf("cursor past the end: %+v", p)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=1e2", "limit=%20", "limit=0x10"} {
		if s, _, _ := call(t, ts, "GET", "/v1/subscriptions?"+q, advAdmin, ""); s != http.StatusBadRequest {
			t.Errorf("GET ?%s answered %d, want 400", q, s)
		}
	}
}

// verify is the Standard Webhooks check, apart from the package.
func verify(secret, id, ts string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return slices.Contains(strings.Fields(header), want)
}

// A secret rotated through PUT signs the very next delivery; a filter
// changed through PUT and back applies at once.
func TestAdversary3PutRotatesSecretAndFilter(t *testing.T) {
	sink := httpsink.New(t, nil)
	b, broker := bridgeOn(t, webhook.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); _ = b.Close(); <-done })
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Bridge: b, Publisher: broker})

	old, fresh := secretOf(32), secretOf(40)
	sub := func(secret, filter string) string {
		return fmt.Sprintf(`{"id": "rot", "topic": "t", "url": %q, "secret": %q, "filter": %q}`, sink.URL+"/h", secret, filter)
	}
	if s, body, _ := call(t, ts, "POST", "/v1/subscriptions", advAdmin, sub(old, "data.n > 0")); s != http.StatusCreated {
		t.Fatalf("POST: %d %s", s, body)
	}
	post := func(id string, n int) {
		t.Helper()
		if s, body, _ := call(t, ts, "POST", "/v1/events", "", fmt.Sprintf(`{"name": "t", "id": %q, "payload": {"n": %d}}`, id, n)); s != http.StatusAccepted {
			t.Fatalf("POST event %s: %d %s", id, s, body)
		}
	}
	post("e1", 1)
	h := sink.WaitFor(t, 1, 10*time.Second)[0]
	if !verify(old, "e1", h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
		t.Fatalf("first delivery not signed with the first secret")
	}
	// rotate, and change the filter to one e2 fails, then back
	for _, f := range []string{"data.n < 0", "data.n > 0", "data.n < 0"} {
		if s, body, _ := call(t, ts, "PUT", "/v1/subscriptions/rot", advAdmin, sub(fresh, f)); s != http.StatusOK {
			t.Fatalf("PUT: %d %s", s, body)
		}
	}
	post("e2", 2)  // filtered out now
	post("e3", -3) // matches now
	hits := sink.WaitFor(t, 2, 10*time.Second)
	h = hits[1]
	if id := h.Header.Get("Webhook-Id"); id != "e3" {
		t.Errorf("second delivery is %s, want e3 (the filter edited back and forth is data.n < 0)", id)
	}
	if !verify(fresh, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
		t.Errorf("delivery after PUT rotated the secret is not signed with the new one")
	}
	if verify(old, h.Header.Get("Webhook-Id"), h.Header.Get("Webhook-Timestamp"), h.Body, h.Header.Get("Webhook-Signature")) {
		t.Errorf("delivery after PUT replaced the secret is still signed with the old one")
	}
}

// With deny_private, a literal private address is refused by the admin
// API, whatever its spelling: such a subscription could never deliver.
func TestAdversary3PrivateLiteralSpellingsRefused(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Targets: webhook.TargetPolicy{DenyPrivate: true}})
	for i, u := range []string{
		"http://127.0.0.1:1/x",
		"http://[::ffff:127.0.0.1]:1/x",
		"http://[::ffff:7f00:1]:1/x",
		"http://[::ffff:10.0.0.1]:1/x",
		"http://[::ffff:169.254.169.254]/x",
		"http://0.0.0.0:1/x",
		"http://[::]:1/x",
		"http://[::1]:1/x",
		"http://[fe80::1%25lo]:1/x",
		"http://[64:ff9b::7f00:1]:1/x",
	} {
		body := fmt.Sprintf(`{"id": "p%d", "topic": "t", "url": %q}`, i, u)
		if s, b, _ := call(t, ts, "POST", "/v1/subscriptions", advAdmin, body); s != http.StatusBadRequest {
			t.Errorf("url %s with deny_private answered %d %s, want 400", u, s, b)
		}
	}
}

// A config file that gains an id the admin API already stored (a rolling
// deploy, or another replica's older config) must not wedge the admin
// API: here every later change answers 503 ("Redis did not answer",
// though it did) after writing the store, so the change is stored yet not
// in force, and a retried POST then answers 409.
func TestAdversary3ConfigIDClashDoesNotWedgeAPI(t *testing.T) {
	store := webhookhttp.NewMemoryStore()
	x := webhook.Subscription{ID: "x", Topic: "t", URL: "http://127.0.0.1:1/x"}
	if err := store.Put(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	b := newBridge(t)
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Bridge: b, Store: store, ReadOnly: []webhook.Subscription{x}})
	s, body, _ := call(t, ts, "POST", "/v1/subscriptions", advAdmin, subBody("y", ""))
	inForce := slices.ContainsFunc(b.Subscriptions(), func(s webhook.Subscription) bool { return s.ID == "y" })
	g, _, _ := call(t, ts, "GET", "/v1/subscriptions/y", advAdmin, "")
	switch {
	case s == http.StatusCreated && !inForce:
		t.Errorf("POST y answered 201 but y is not in force")
	case s != http.StatusCreated && g != http.StatusNotFound:
		t.Errorf("POST y answered %d %s, yet y was stored (GET %d) and is in force: %v", s, body, g, inForce)
	}
}

// Replicas notice changes by the store's version number. When Redis
// loses the store (a restart without persistence; "every replica picks up
// a change within 250ms" is the promise), the counter starts again, and a
// replica whose last seen version equals the new one never loads the new
// set: it keeps delivering to subscriptions that no longer exist and
// ignores the new ones.
func TestAdversary3StoreVersionResetStillSyncs(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr})
	t.Cleanup(func() { _ = client.Close() })
	store := webhookhttp.RedisStore{Client: client, Key: "adv3:{s}:subscriptions"}
	ctx := context.Background()
	t.Cleanup(func() { client.Del(ctx, store.Key, store.Key+":version") })

	bA, bB := newBridge(t), newBridge(t)
	tsA, _ := api(t, webhookhttp.Config{AdminToken: advAdmin, Bridge: bA, Store: store})
	hB, err := webhookhttp.New(webhookhttp.Config{AdminToken: advAdmin, Bridge: bB, Store: store, Publisher: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if s, body, _ := call(t, tsA, "POST", "/v1/subscriptions", advAdmin, subBody("old", "")); s != http.StatusCreated {
		t.Fatalf("POST old: %d %s", s, body)
	}
	if err := hB.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Redis loses everything (restart without persistence).
	if err := client.Del(ctx, store.Key, store.Key+":version").Err(); err != nil {
		t.Fatal(err)
	}
	if s, body, _ := call(t, tsA, "POST", "/v1/subscriptions", advAdmin, subBody("new", "")); s != http.StatusCreated {
		t.Fatalf("POST new: %d %s", s, body)
	}
	if err := hB.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range bB.Subscriptions() {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"new"}) {
		t.Errorf("replica B has subscriptions %v after the store was rebuilt with [new]", ids)
	}
}

// "a PUT without secret keeps the stored secrets": a PUT that does give
// "secret" — as the empty string, the string form of "none" — is not a
// PUT without it, yet the stored secret is silently kept.
func TestAdversary3PutEmptySecretStringIsNotIgnored(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin})
	if s, body, _ := call(t, ts, "POST", "/v1/subscriptions", advAdmin, subBody("es", `, "secret": "`+secretOf(32)+`"`)); s != http.StatusCreated {
		t.Fatalf("POST: %d %s", s, body)
	}
	s, body, _ := call(t, ts, "PUT", "/v1/subscriptions/es", advAdmin, subBody("es", `, "secret": ""`))
	var v webhookhttp.SubscriptionView
	_ = json.Unmarshal([]byte(body), &v)
	if s == http.StatusOK && v.SecretCount != 0 {
		t.Errorf(`PUT with "secret": "" answered 200 with secret_count %d: the secret it gave (none) was ignored; want it removed or the PUT refused`, v.SecretCount)
	}
}
