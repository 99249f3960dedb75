package webhookui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// pageTemplate is one page: the layout and the page's content.
type pageTemplate = template.Template

var pageNames = []string{"login", "error", "overview", "subscriptions", "edit", "log", "event", "dlq", "recover"}

var funcs = template.FuncMap{
	"ratio": func(r float64) string {
		if r < 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", r*100)
	},
	"ms": func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f ms", v)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"rate": func(v float64) string { return fmt.Sprintf("%.2f", v) },
	// headers lists a header's fields sorted, one "Name: value" a line.
	"headers": func(h http.Header) string {
		keys := make([]string, 0, len(h))
		for k := range h {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			for _, v := range h[k] {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
		}
		return b.String()
	},
	// pretty indents JSON, with the <, > and & that encoding/json
	// escaped shown as themselves (the template escapes them for HTML);
	// other text is left as it is.
	"pretty": func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return jsonUnescaper.Replace(b.String())
	},
	// seg is an id as one path segment of a link: html/template leaves
	// '/', '?', '#' and a valid %XX of a path as they are, so an event id
	// from a backend (any bytes) would otherwise link elsewhere.
	"seg": func(id any) string { return url.PathEscape(fmt.Sprint(id)) },
	"cut": func(n int, s string) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n]) + "…"
		}
		return s
	},
}

var jsonUnescaper = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")

func parsePages() (map[string]*pageTemplate, error) {
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webhookui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// view is what the layout renders: the page's title, which navigation
// entry is current, the session's CSRF token, a notice, and the page's
// own data.
type view struct {
	Title  string
	Nav    string
	CSRF   string
	Notice string
	Data   any
}

var navOf = map[string]string{
	"overview": "overview", "subscriptions": "subscriptions", "edit": "subscriptions",
	"log": "log", "event": "log", "dlq": "dlq", "recover": "recover",
}

// render writes page with data, or a 500 when the template fails.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	v := view{Title: title, Nav: navOf[page], Data: data}
	if id := sessionID(r.Context()); id != "" {
		v.CSRF = c.sessions.csrf(id)
	}
	if n, ok := data.(interface{ notice() string }); ok {
		v.Notice = n.notice()
	}
	var b bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&b, "layout", v); err != nil {
		c.cfg.Logger.Error("webhookui: rendering", "page", page, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

type errorData struct {
	Status  int
	Message string
}

// fail renders the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", http.StatusText(status), errorData{Status: status, Message: msg})
}

// failAPI renders an error of an internal API call.
func (c *Console) failAPI(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := err.(*apiError); ok {
		c.fail(w, r, e.Status, e.Msg)
		return
	}
	c.cfg.Logger.Error("webhookui: calling the API", "path", r.URL.Path, "err", err)
	c.fail(w, r, http.StatusBadGateway, err.Error())
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// link is path with the non-empty values of q.
func link(path string, q url.Values) string {
	keep := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				keep.Add(k, v)
			}
		}
	}
	if len(keep) == 0 {
		return path
	}
	return path + "?" + keep.Encode()
}
