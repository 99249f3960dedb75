package webhookui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// deadLettersPerPage is the page size of the dead letters.
const deadLettersPerPage = 50

var kinds = []webhook.DeadLetterKind{webhook.KindExhausted, webhook.KindGone, webhook.KindUndeliverable, webhook.KindOrphaned, webhook.KindUnhandled}

type deadLetterRow struct {
	webhookhttp.DeadLetterView
	// Pick identifies the dead letter in the replay form.
	Pick string
}

type deadLettersData struct {
	Kind     string
	Kinds    []webhook.DeadLetterKind
	Rows     []deadLetterRow
	NextLink string
	First    string
	Done     string
}

func (d deadLettersData) notice() string { return d.Done }

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	in := r.URL.Query()
	d := deadLettersData{Kind: in.Get("kind"), Kinds: kinds}
	q := url.Values{"limit": {strconv.Itoa(deadLettersPerPage)}}
	if d.Kind != "" {
		q.Set("kind", d.Kind)
	}
	if after := in.Get("after"); after != "" {
		q.Set("after", after)
		d.First = link("/ui/dlq", url.Values{"kind": {d.Kind}})
	}
	var page webhookhttp.DeadLetterPage
	if err := c.call(r.Context(), http.MethodGet, "/v1/dlq", q, nil, &page); err != nil {
		c.failAPI(w, r, err)
		return
	}
	for _, dl := range page.DeadLetters {
		d.Rows = append(d.Rows, deadLetterRow{DeadLetterView: dl, Pick: url.Values{"s": {dl.SubscriptionID}, "e": {dl.Event.ID}}.Encode()})
	}
	if page.Next != "" {
		d.NextLink = link("/ui/dlq", url.Values{"kind": {d.Kind}, "after": {page.Next}})
	}
	if n := in.Get("replayed"); n != "" {
		if k, err := strconv.Atoi(n); err == nil {
			d.Done = fmt.Sprintf("%d dead letters replayed.", k)
		}
	}
	c.render(w, r, http.StatusOK, "dlq", "Dead letters", d)
}

// replay replays one dead letter (the button "one"), the ones ticked
// ("pick"), or every one of a subscription ("subscription"), each with
// POST /v1/dlq/replay.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	var matches []url.Values
	switch {
	case r.PostFormValue("one") != "":
		matches = append(matches, pick(r.PostFormValue("one")))
	case r.PostFormValue("action") == "subscription":
		sub := r.PostFormValue("subscription")
		if sub == "" {
			c.fail(w, r, http.StatusBadRequest, "name the subscription whose dead letters to replay")
			return
		}
		matches = append(matches, url.Values{"subscription": {sub}})
	default:
		for _, p := range r.PostForm["pick"] {
			matches = append(matches, pick(p))
		}
		if len(matches) == 0 {
			c.fail(w, r, http.StatusBadRequest, "no dead letter selected: tick the ones to replay")
			return
		}
	}
	total := 0
	for _, m := range matches {
		if m == nil {
			c.fail(w, r, http.StatusBadRequest, "a selected dead letter is not one of this page's")
			return
		}
		var out struct {
			Replayed int `json:"replayed"`
		}
		if err := c.call(r.Context(), http.MethodPost, "/v1/dlq/replay", m, nil, &out); err != nil {
			c.failAPI(w, r, err)
			return
		}
		total += out.Replayed
	}
	c.cfg.Logger.Info("webhookui: dead letters replayed", "replayed", total)
	http.Redirect(w, r, "/ui/dlq?replayed="+strconv.Itoa(total), http.StatusSeeOther)
}

// pick reads a dead letter's Pick into the query of /v1/dlq/replay; nil
// when it is not one.
func pick(s string) url.Values {
	v, err := url.ParseQuery(s)
	if err != nil || v.Get("e") == "" {
		return nil
	}
	out := url.Values{"event": {v.Get("e")}}
	if sub := v.Get("s"); sub != "" {
		out.Set("subscription", sub)
	}
	return out
}

type recoverData struct {
	Subscription, Since, Until string
	Subscriptions              []string
	Report                     *webhook.RecoverReport
	Error                      string
}

// recoverChoices is how many subscription ids the recover form offers.
const recoverChoices = 1000

func (c *Console) recoverPage(w http.ResponseWriter, r *http.Request) {
	d := recoverData{Subscription: r.URL.Query().Get("subscription"), Since: "1h"}
	c.offer(r, &d)
	c.render(w, r, http.StatusOK, "recover", "Recover", d)
}

// offer fills the subscriptions the form suggests (a datalist: any id
// may be typed).
func (c *Console) offer(r *http.Request, d *recoverData) {
	var page webhookhttp.SubscriptionPage
	if err := c.call(r.Context(), http.MethodGet, "/v1/subscriptions", url.Values{"limit": {strconv.Itoa(recoverChoices)}}, nil, &page); err == nil {
		for _, s := range page.Subscriptions {
			d.Subscriptions = append(d.Subscriptions, s.ID)
		}
	}
}

func (c *Console) recover(w http.ResponseWriter, r *http.Request) {
	d := recoverData{Subscription: r.PostFormValue("subscription"), Since: r.PostFormValue("since"), Until: r.PostFormValue("until")}
	c.offer(r, &d)
	status := http.StatusOK
	var rep webhook.RecoverReport
	err := errors.New("name the subscription to recover")
	if d.Subscription != "" {
		err = c.call(r.Context(), http.MethodPost, "/v1/subscriptions/"+url.PathEscape(d.Subscription)+"/recover", nil,
			webhookhttp.RecoverRequest{Since: d.Since, Until: d.Until}, &rep)
	}
	var e *apiError
	switch {
	case err == nil:
		d.Report = &rep
		c.cfg.Logger.Info("webhookui: recovery scheduled", "subscription", d.Subscription, "scheduled", rep.Scheduled)
	case errors.As(err, &e):
		status, d.Error = e.Status, e.Msg
	default:
		status, d.Error = http.StatusBadRequest, err.Error()
	}
	c.render(w, r, status, "recover", "Recover", d)
}
