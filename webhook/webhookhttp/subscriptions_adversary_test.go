package webhookhttp_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

func secretOf(n int) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func subBody(id string, extra string) string {
	b, _ := json.Marshal(id)
	return fmt.Sprintf(`{"id": %s, "topic": "t", "url": "http://127.0.0.1:1/x"%s}`, b, extra)
}

// ADVERSARY: what the admin API accepts must be refused or valid in a
// delivery's headers; secrets outside 24-64 bytes and headers the bridge
// owns are refused.
func TestAdversarySubscriptionInputRefused(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin})
	refused := map[string]string{
		"secret 23 bytes":          subBody("s1", `, "secret": "`+secretOf(23)+`"`),
		"secret 65 bytes":          subBody("s2", `, "secret": "`+secretOf(65)+`"`),
		"secret list with a bad":   subBody("s3", `, "secret": ["`+secretOf(32)+`", "`+secretOf(8)+`"]`),
		"header webhook-id":        subBody("s4", `, "headers": {"Webhook-Id": "x"}`),
		"header CE-TYPE":           subBody("s5", `, "headers": {"CE-TYPE": "x"}`),
		"header content-type":      subBody("s6", `, "headers": {"content-type": "x"}`),
		"header User-Agent":        subBody("s7", `, "headers": {"User-Agent": "x"}`),
		"header host":              subBody("s8", `, "headers": {"host": "x"}`),
		"header X-Correlation-ID":  subBody("s9", `, "headers": {"X-Correlation-ID": "x"}`),
		"header transfer-encoding": subBody("s10", `, "headers": {"transfer-encoding": "chunked"}`),
		"header name with space":   subBody("s11", `, "headers": {"X A": "x"}`),
		"header name with colon":   subBody("s12", `, "headers": {"X:A": "x"}`),
		"header value CRLF":        subBody("s13", `, "headers": {"X-A": "a\r\nX-B: b"}`),
		"header value non-ASCII":   subBody("s14", `, "headers": {"X-A": "é"}`),
		"header value NUL":         subBody("s15", `, "headers": {"X-A": "a\u0000"}`),
		"header name empty":        subBody("s16", `, "headers": {"": "x"}`),
		// two spellings of one header: which value is sent depends on map
		// order, a different one on each delivery
		"header twice in two cases": subBody("s17", `, "headers": {"X-Tenant": "a", "x-tenant": "b"}`),
		// a value HTTP trims: the receiver reads "a", not " a "
		"header value with outer spaces": subBody("s18", `, "headers": {"X-A": " a "}`),
		"header value with outer tab":    subBody("s19", `, "headers": {"X-A": "\ta"}`),
		// the id travels as the Webhook-Subscription header
		"id non-ASCII":     subBody("sübscription", ""),
		"id leading space": subBody(" s20", ""),
		"id trailing tab":  subBody("s21\t", ""),
		"id U+2028":        subBody("s22\u2028", ""),
		"id C1 control":    subBody("s23\u0085", ""),
		"id newline":       subBody("s24\n", ""),
	}
	for name, body := range refused {
		status, resp, ct := call(t, ts, http.MethodPost, "/v1/subscriptions", advAdmin, body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: POST = %d %s, want 400", name, status, strings.TrimSpace(resp))
			continue
		}
		problem(t, status, resp, ct)
	}
	for name, body := range map[string]string{
		"secret 24 bytes": subBody("ok24", `, "secret": "`+secretOf(24)+`"`),
		"secret 64 bytes": subBody("ok64", `, "secret": "`+secretOf(64)+`"`),
		"authorization":   subBody("okauth", `, "headers": {"Authorization": "Bearer x"}`),
	} {
		if status, resp, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", advAdmin, body); status != http.StatusCreated {
			t.Errorf("%s: POST = %d %s, want 201", name, status, resp)
		}
	}
}

// ADVERSARY: a subscription the admin API creates can be read, replaced
// with what GET answered, and deleted through the admin API. Ids such as
// "." and ".." are accepted by POST, but their paths are cleaned away by
// the mux: they can never be read, replaced or deleted.
func TestAdversarySubscriptionIDsAddressable(t *testing.T) {
	ts, _ := api(t, webhookhttp.Config{AdminToken: advAdmin})
	for _, id := range []string{"plain", "a/b", "a b", "a%2Fb", "..", ".", "a?b", "a#b", "-", "a.b"} {
		status, resp, _ := call(t, ts, http.MethodPost, "/v1/subscriptions", advAdmin, subBody(id, `, "timeout": "1m30s", "max_attempts": 3, "filter": "data.x == 1", "headers": {"X-A": "1"}, "secret": "`+secretOf(32)+`"`))
		if status == http.StatusBadRequest {
			continue // refusing it is fine
		}
		if status != http.StatusCreated {
			t.Errorf("id %q: POST = %d %s", id, status, resp)
			continue
		}
		path := "/v1/subscriptions/" + url.PathEscape(id)
		status, got, _ := call(t, ts, http.MethodGet, path, advAdmin, "")
		if status != http.StatusOK {
			t.Errorf("id %q: created (201) but GET %s = %d %s", id, path, status, strings.TrimSpace(got))
			continue
		}
		status, put, _ := call(t, ts, http.MethodPut, path, advAdmin, got)
		if status != http.StatusOK || put != got {
			t.Errorf("id %q: PUT of the GET body = %d\n%s\nwant 200 and the same view\n%s", id, status, put, got)
		}
		if status, resp, _ := call(t, ts, http.MethodDelete, path, advAdmin, ""); status != http.StatusNoContent {
			t.Errorf("id %q: DELETE %s = %d %s", id, path, status, resp)
		}
	}
}
