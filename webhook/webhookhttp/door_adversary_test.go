package webhookhttp_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// ADVERSARY: POST /v1/events refuses with 400 naming the field anything
// that could never become a valid delivery, and emits nothing of that
// request, alone or in a batch beside a good event.
func TestAdversaryDoorRefusesHostileFields(t *testing.T) {
	long := strings.Repeat("n", 257)
	cases := map[string]struct{ event, field string }{
		"name C0":                            {`{"name": "a\u0001", "payload": 1}`, "name"},
		"name DEL":                           {`{"name": "a\u007f", "payload": 1}`, "name"},
		"name C1 NEL":                        {`{"name": "a\u0085", "payload": 1}`, "name"},
		"name CRLF":                          {`{"name": "a\r\nX-Evil: 1", "payload": 1}`, "name"},
		"name 257 bytes":                     {`{"name": "` + long + `", "payload": 1}`, "name"},
		"name 10 KB":                         {`{"name": "` + strings.Repeat("é", 5000) + `", "payload": 1}`, "name"},
		"correlation newline":                {`{"name": "a", "payload": 1, "correlation_id": "x\ny"}`, "correlation_id"},
		"correlation C1":                     {`{"name": "a", "payload": 1, "correlation_id": "x\u009b"}`, "correlation_id"},
		"correlation 257":                    {`{"name": "a", "payload": 1, "correlation_id": "` + long + `"}`, "correlation_id"},
		"id dot":                             {`{"name": "a", "payload": 1, "id": "forge.1795385012"}`, "id"},
		"id space":                           {`{"name": "a", "payload": 1, "id": "a b"}`, "id"},
		"id non-ASCII":                       {`{"name": "a", "payload": 1, "id": "é"}`, "id"},
		"id fullwidth lookalike":             {`{"name": "a", "payload": 1, "id": "ａｂｃ"}`, "id"},
		"id cyrillic lookalike":              {`{"name": "a", "payload": 1, "id": "оrder-1"}`, "id"},
		"id U+2028":                          {`{"name": "a", "payload": 1, "id": "a\u2028"}`, "id"},
		"id 129 bytes":                       {`{"name": "a", "payload": 1, "id": "` + strings.Repeat("i", 129) + `"}`, "id"},
		"id lone surrogate":                  {`{"name": "a", "payload": 1, "id": "a\ud800"}`, "id"},
		"id zero width":                      {`{"name": "a", "payload": 1, "id": "a\u200b"}`, "id"},
		"id NUL":                             {`{"name": "a", "payload": 1, "id": "a\u0000"}`, "id"},
		"name raw invalid UTF-8":             {"{\"name\": \"a\xffb\", \"payload\": 1}", "name"},
		"name raw lone surrogate":            {"{\"name\": \"a\xed\xa0\x80b\", \"payload\": 1}", "name"},
		"corr raw invalid UTF-8":             {"{\"name\": \"a\", \"payload\": 1, \"correlation_id\": \"\xc3\"}", "correlation_id"},
		"name escaped lone surrogate":        {`{"name": "a\ud800b", "payload": 1}`, "name"},
		"correlation escaped lone surrogate": {`{"name": "a", "payload": 1, "correlation_id": "\udfff"}`, "correlation_id"},
		"reserved retry name":                {`{"name": "switchyard.webhook.retry", "payload": 1}`, "name"},
		"reserved recovery name":             {`{"name": "switchyard.webhook.recover", "payload": {"subscription_id": "s", "recovery": "r", "events": ["e"]}}`, "name"},
		"missing payload":                    {`{"name": "a"}`, "payload"},
		"unknown field":                      {`{"name": "a", "payload": 1, "Id": "x"}`, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ts, rec := api(t, webhookhttp.Config{})
			for _, body := range []string{c.event, `[{"name": "good", "payload": 1, "id": "good-1"}, ` + c.event + `]`} {
				status, resp, ct := call(t, ts, http.MethodPost, "/v1/events", "", body)
				if status != http.StatusBadRequest {
					t.Errorf("POST %q = %d %s, want 400", shownBody(body), status, strings.TrimSpace(resp))
					continue
				}
				p := problem(t, status, resp, ct)
				if c.field != "" && !strings.Contains(p.Error, c.field) {
					t.Errorf("400 %q does not name %s", p.Error, c.field)
				}
			}
			if n := len(rec.emitted()); n != 0 {
				t.Errorf("%d events emitted from refused requests", n)
			}
		})
	}
}

func shownBody(s string) string {
	if len(s) > 120 {
		return s[:120] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// ADVERSARY: correlation_id defaults to the event's id. With an id given
// and no correlation_id, the event is made with a fresh UUIDv7 (which
// becomes its correlation ID) and only then gets the posted id: the
// delivery's X-Correlation-Id is a random UUID, not the id.
func TestAdversaryCorrelationDefaultsToGivenID(t *testing.T) {
	ts, rec := api(t, webhookhttp.Config{})
	status, body, _ := call(t, ts, http.MethodPost, "/v1/events", "", `{"name": "a", "payload": 1, "id": "order-1042-created"}`)
	if status != http.StatusAccepted {
		t.Fatalf("POST = %d %s", status, body)
	}
	evs := rec.emitted()
	if len(evs) != 1 {
		t.Fatalf("%d emitted", len(evs))
	}
	if got := evs[0].Meta.CorrelationID; got != "order-1042-created" {
		t.Errorf("correlation ID = %q, want the event's id %q", got, "order-1042-created")
	}
}
