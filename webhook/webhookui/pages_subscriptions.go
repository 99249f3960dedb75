package webhookui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// subscriptionsPerPage is the page size of the subscriptions list.
const subscriptionsPerPage = 50

type subscriptionRow struct {
	webhookhttp.SubscriptionView
	Health *webhookhttp.HealthView
}

type subscriptionsData struct {
	Rows   []subscriptionRow
	Next   string
	Cursor string
	Done   string
}

func (d subscriptionsData) notice() string { return d.Done }

func (c *Console) subscriptionsPage(w http.ResponseWriter, r *http.Request) {
	cursor := r.URL.Query().Get("cursor")
	q := url.Values{"limit": {strconv.Itoa(subscriptionsPerPage)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page webhookhttp.SubscriptionPage
	if err := c.call(r.Context(), http.MethodGet, "/v1/subscriptions", q, nil, &page); err != nil {
		c.failAPI(w, r, err)
		return
	}
	// /v1/health pages the same way: the same cursor gives the same ids.
	var health webhookhttp.HealthPage
	if err := c.call(r.Context(), http.MethodGet, "/v1/health", q, nil, &health); err != nil {
		c.cfg.Logger.Warn("webhookui: reading health", "err", err)
	}
	byID := map[string]*webhookhttp.HealthView{}
	for i := range health.Subscriptions {
		byID[health.Subscriptions[i].SubscriptionID] = &health.Subscriptions[i]
	}
	d := subscriptionsData{Next: page.Next, Cursor: cursor}
	for _, s := range page.Subscriptions {
		d.Rows = append(d.Rows, subscriptionRow{SubscriptionView: s, Health: byID[s.ID]})
	}
	switch r.URL.Query().Get("done") {
	case "enabled":
		d.Done = "Subscription enabled."
	case "disabled":
		d.Done = "Subscription disabled."
	case "saved":
		d.Done = "Subscription saved."
	}
	c.render(w, r, http.StatusOK, "subscriptions", "Subscriptions", d)
}

func (c *Console) disable(w http.ResponseWriter, r *http.Request) { c.toggle(w, r, "disable") }
func (c *Console) enable(w http.ResponseWriter, r *http.Request)  { c.toggle(w, r, "enable") }

func (c *Console) toggle(w http.ResponseWriter, r *http.Request, action string) {
	id := r.PathValue("id")
	var body any
	if action == "disable" {
		body = map[string]string{"reason": "disabled by an operator in the console"}
	}
	if err := c.call(r.Context(), http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/"+action, nil, body, nil); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.cfg.Logger.Info("webhookui: subscription "+action+"d", "subscription", id)
	back := url.Values{"done": {action + "d"}}
	if cur := r.PostFormValue("cursor"); cur != "" {
		back.Set("cursor", cur)
	}
	http.Redirect(w, r, link("/ui/subscriptions", back), http.StatusSeeOther)
}

// subscriptionForm is the edit form's fields, as typed.
type subscriptionForm struct {
	Topic, Filter, URL, Headers, Timeout, MaxAttempts string
}

type editData struct {
	Sub   webhookhttp.SubscriptionView
	Form  subscriptionForm
	Error string
}

func formOf(v webhookhttp.SubscriptionView) subscriptionForm {
	f := subscriptionForm{Topic: v.Topic, Filter: v.Filter, URL: v.URL}
	if v.Timeout != 0 {
		f.Timeout = time.Duration(v.Timeout).String()
	}
	if v.MaxAttempts != 0 {
		f.MaxAttempts = strconv.Itoa(v.MaxAttempts)
	}
	names := make([]string, 0, len(v.Headers))
	for k := range v.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f.Headers += k + ": " + v.Headers[k] + "\n"
	}
	return f
}

func readForm(r *http.Request) subscriptionForm {
	return subscriptionForm{
		Topic: r.PostFormValue("topic"), Filter: r.PostFormValue("filter"), URL: r.PostFormValue("url"),
		Headers: r.PostFormValue("headers"), Timeout: r.PostFormValue("timeout"), MaxAttempts: r.PostFormValue("max_attempts"),
	}
}

// apply returns v with the form's fields; its error names the field.
func (f subscriptionForm) apply(v webhookhttp.SubscriptionView) (webhookhttp.SubscriptionView, error) {
	v.Topic, v.Filter, v.URL = strings.TrimSpace(f.Topic), strings.TrimSpace(f.Filter), strings.TrimSpace(f.URL)
	v.Timeout, v.MaxAttempts, v.Headers = 0, 0, nil
	if s := strings.TrimSpace(f.Timeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return v, fmt.Errorf("timeout %q: want a duration such as 10s", s)
		}
		v.Timeout = webhook.Duration(d)
	}
	if s := strings.TrimSpace(f.MaxAttempts); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return v, fmt.Errorf("max attempts %q: want a whole number", s)
		}
		v.MaxAttempts = n
	}
	for i, l := range strings.Split(f.Headers, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return v, fmt.Errorf("headers, line %d: want Name: value", i+1)
		}
		if v.Headers == nil {
			v.Headers = map[string]string{}
		}
		v.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return v, nil
}

func (c *Console) subscription(r *http.Request) (webhookhttp.SubscriptionView, error) {
	var v webhookhttp.SubscriptionView
	err := c.call(r.Context(), http.MethodGet, "/v1/subscriptions/"+url.PathEscape(r.PathValue("id")), nil, nil, &v)
	return v, err
}

func (c *Console) editPage(w http.ResponseWriter, r *http.Request) {
	v, err := c.subscription(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "edit", "Edit subscription "+v.ID, editData{Sub: v, Form: formOf(v)})
}

// save replaces the subscription with PUT, keeping its secrets (a view has
// none, and a PUT without them keeps the stored ones).
func (c *Console) save(w http.ResponseWriter, r *http.Request) {
	v, err := c.subscription(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	form := readForm(r)
	put, err := form.apply(v)
	if err == nil {
		err = c.call(r.Context(), http.MethodPut, "/v1/subscriptions/"+url.PathEscape(v.ID), nil, put, nil)
	}
	if err != nil {
		status := http.StatusBadRequest
		var e *apiError
		if errors.As(err, &e) {
			status, err = e.Status, errors.New(e.Msg)
		}
		c.render(w, r, status, "edit", "Edit subscription "+v.ID, editData{Sub: v, Form: form, Error: err.Error()})
		return
	}
	c.cfg.Logger.Info("webhookui: subscription saved", "subscription", v.ID)
	http.Redirect(w, r, "/ui/subscriptions?done=saved", http.StatusSeeOther)
}

// check answers the form's script: whether the subscription as typed
// would be accepted (POST /v1/subscriptions/check), as JSON
// {"ok": true} or {"ok": false, "error": "..."}.
func (c *Console) check(w http.ResponseWriter, r *http.Request) {
	out := struct {
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}{}
	v, err := c.subscription(r)
	if err == nil {
		v, err = readForm(r).apply(v)
	}
	if err == nil {
		err = c.call(r.Context(), http.MethodPost, "/v1/subscriptions/check", nil, v, nil)
	}
	var e *apiError
	switch {
	case err == nil:
		out.OK = true
	case errors.As(err, &e):
		out.Error = e.Msg
	default:
		out.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
