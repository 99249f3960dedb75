package webhookui

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// attemptsPerPage is the page size of the delivery log.
const attemptsPerPage = 50

// logFilters are the delivery log's filters, as GET /v1/attempts names
// them.
var logFilters = []string{"subscription_id", "event_id", "outcome", "status", "since", "until"}

// outcomes are the outcomes the log's filter offers.
var outcomes = []webhook.Outcome{webhook.Delivered, webhook.Failed, webhook.TimedOut, webhook.DeadLettered,
	webhook.Deferred, webhook.RateLimited, webhook.Skipped, webhook.DryRun}

type logData struct {
	Filter   map[string]string
	Outcomes []webhook.Outcome
	Attempts []webhookhttp.AttemptView
	NextLink string
	First    string // the first page with the same filters, when on a later one
	Error    string
}

func (c *Console) logPage(w http.ResponseWriter, r *http.Request) {
	in := r.URL.Query()
	q := url.Values{"limit": {strconv.Itoa(attemptsPerPage)}}
	d := logData{Filter: map[string]string{}, Outcomes: outcomes}
	filters := url.Values{}
	for _, k := range logFilters {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
			filters.Set(k, v)
			d.Filter[k] = v
		}
	}
	if cur := in.Get("cursor"); cur != "" {
		q.Set("cursor", cur)
		d.First = link("/ui/log", filters)
	}
	var page webhookhttp.AttemptPage
	status := http.StatusOK
	if err := c.call(r.Context(), http.MethodGet, "/v1/attempts", q, nil, &page); err != nil {
		e, ok := err.(*apiError)
		if !ok || e.Status != http.StatusBadRequest {
			c.failAPI(w, r, err)
			return
		}
		// A filter that does not parse: the form again, with the reason.
		status, d.Error = e.Status, e.Msg
	}
	d.Attempts = page.Attempts
	if page.Next != "" {
		next := url.Values{}
		for k, v := range filters {
			next[k] = v
		}
		next.Set("cursor", page.Next)
		d.NextLink = link("/ui/log", next)
	}
	c.render(w, r, status, "log", "Delivery log", d)
}

type eventData struct {
	ID string
	webhookhttp.EventAttempts
}

func (c *Console) eventPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var ev webhookhttp.EventAttempts
	if err := c.call(r.Context(), http.MethodGet, "/v1/events/"+url.PathEscape(id), nil, nil, &ev); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "event", "Event "+id, eventData{ID: id, EventAttempts: ev})
}
