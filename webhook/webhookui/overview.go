package webhookui

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard-go/switchyard/webhook"
	"github.com/switchyard-go/switchyard/webhook/webhookhttp"
)

// sample is what the overview reads of the API's /metrics at one time:
// counters as they stand, and gauges (-1 when absent).
type sample struct {
	At        time.Time
	Consumed  float64 // events the bridge consumed
	Delivered float64 // attempts answered 2xx
	Failed    float64 // attempts failed or gone
	Lag       float64
	Dead      float64
}

// ring keeps the last Points samples.
type ring struct {
	mu     sync.Mutex
	points []sample
}

func (r *ring) add(s sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.points) == Points {
		copy(r.points, r.points[1:])
		r.points = r.points[:Points-1]
	}
	r.points = append(r.points, s)
}

func (r *ring) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.points)
}

func (r *ring) all() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.points)
}

func (c *Console) sampleLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.SampleEvery)
	defer t.Stop()
	for {
		if err := c.sample(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("webhookui: sampling /metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads /metrics through the API once and keeps the point.
func (c *Console) sample(ctx context.Context) error {
	s, err := c.fresh(ctx, time.Now())
	if err != nil {
		return err
	}
	c.series.add(s)
	return nil
}

// fresh reads /metrics through the API once.
func (c *Console) fresh(ctx context.Context, now time.Time) (sample, error) {
	body, err := c.raw(ctx, "/metrics")
	if err != nil {
		return sample{}, err
	}
	return parseSample(body, now)
}

func parseSample(body []byte, at time.Time) (sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return sample{}, fmt.Errorf("parsing /metrics: %w", err)
	}
	s := sample{At: at, Lag: -1, Dead: -1}
	sum := func(name string, keep func(*dto.Metric) bool) float64 {
		var total float64
		f := fams[name]
		if f == nil {
			return 0
		}
		for _, m := range f.GetMetric() {
			if keep == nil || keep(m) {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return total
	}
	outcome := func(want ...string) func(*dto.Metric) bool {
		return func(m *dto.Metric) bool {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					return slices.Contains(want, l.GetValue())
				}
			}
			return false
		}
	}
	s.Consumed = sum("webhook_bridge_events_consumed_total", nil)
	s.Delivered = sum("webhook_bridge_deliveries_total", outcome(string(webhook.Delivered)))
	s.Failed = sum("webhook_bridge_deliveries_total", outcome(string(webhook.Failed), string(webhook.Gone)))
	if fams["webhook_bridge_consumer_lag"] != nil {
		s.Lag = sum("webhook_bridge_consumer_lag", nil)
	}
	if fams["webhook_bridge_dead_letters_stored"] != nil {
		s.Dead = sum("webhook_bridge_dead_letters_stored", nil)
	}
	return s, nil
}

// rates are the series the overview draws: per-second rates between
// consecutive samples, and the lag.
type rates struct {
	At      []time.Time
	In, Out []float64
	Lag     []float64
}

func ratesOf(points []sample) rates {
	var r rates
	for i := 1; i < len(points); i++ {
		a, b := points[i-1], points[i]
		dt := b.At.Sub(a.At).Seconds()
		if dt <= 0 {
			continue
		}
		r.At = append(r.At, b.At)
		r.In = append(r.In, max(0, b.Consumed-a.Consumed)/dt)
		r.Out = append(r.Out, max(0, (b.Delivered+b.Failed)-(a.Delivered+a.Failed))/dt)
		r.Lag = append(r.Lag, b.Lag)
	}
	return r
}

// chart is an inline SVG line chart of one or more series over the last
// hour, drawn by the template from these coordinates.
type chart struct {
	Title  string
	Max    string
	Lines  []line
	Width  int
	Height int
}

type line struct {
	Name, Class, Points string
}

const chartW, chartH = 600, 120

func newChart(title string, span time.Duration, now time.Time, at []time.Time, series map[string][]float64, order ...string) chart {
	top := 0.0
	for _, s := range series {
		for _, v := range s {
			top = max(top, v)
		}
	}
	if top == 0 {
		top = 1
	}
	ch := chart{Title: title, Max: strconv.FormatFloat(top, 'g', 4, 64), Width: chartW, Height: chartH}
	for i, name := range order {
		var pts []string
		for j, v := range series[name] {
			if v < 0 {
				continue // the source did not answer
			}
			x := float64(chartW) * (1 - float64(now.Sub(at[j]))/float64(span))
			if x < 0 {
				continue
			}
			y := float64(chartH) * (1 - v/top)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		ch.Lines = append(ch.Lines, line{Name: name, Class: "series" + strconv.Itoa(i), Points: strings.Join(pts, " ")})
	}
	return ch
}

type overviewData struct {
	InRate, OutRate, Success float64
	HourSuccess              float64
	Lag, Dead                float64
	Samples                  int // kept, the one taken for the page excluded
	Every                    time.Duration
	Charts                   []chart
	Failing                  []webhookhttp.HealthView
	HealthPartial            bool
	HealthError              string
}

// healthPage is how many subscriptions' health the overview reads.
const healthPage = 500

// stateRank orders states worst first.
var stateRank = map[webhook.HealthState]int{
	webhook.StateDisabled: 0, webhook.StateCircuitOpen: 1, webhook.StateFailing: 2, webhook.StateRateLimited: 3, webhook.StateHealthy: 4,
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	points := c.series.all()
	// A sample taken now, not kept: the figures say what happens since
	// the last kept sample, even right after start.
	if live, err := c.fresh(r.Context(), now); err == nil && (len(points) == 0 || live.At.Sub(points[len(points)-1].At) >= time.Second) {
		points = append(points, live)
	}
	rs := ratesOf(points)
	d := overviewData{Success: -1, HourSuccess: -1, Lag: -1, Dead: -1, Samples: c.series.len(), Every: c.cfg.SampleEvery}
	if n := len(rs.At); n > 0 {
		d.InRate, d.OutRate = rs.In[n-1], rs.Out[n-1]
		a, b := points[len(points)-2], points[len(points)-1]
		if sent := (b.Delivered + b.Failed) - (a.Delivered + a.Failed); sent > 0 {
			d.Success = (b.Delivered - a.Delivered) / sent
		}
		first := points[0]
		if sent := (b.Delivered + b.Failed) - (first.Delivered + first.Failed); sent > 0 {
			d.HourSuccess = (b.Delivered - first.Delivered) / sent
		}
	}
	if n := len(points); n > 0 {
		d.Lag, d.Dead = points[n-1].Lag, points[n-1].Dead
	}
	span := time.Duration(Points) * c.cfg.SampleEvery
	d.Charts = []chart{
		newChart("Events in and deliveries out per second", span, now, rs.At, map[string][]float64{"events in/s": rs.In, "deliveries out/s": rs.Out}, "events in/s", "deliveries out/s"),
		newChart("Consumer lag (entries)", span, now, rs.At, map[string][]float64{"lag": rs.Lag}, "lag"),
	}
	var hp webhookhttp.HealthPage
	if err := c.call(r.Context(), http.MethodGet, "/v1/health", url.Values{"limit": {strconv.Itoa(healthPage)}}, nil, &hp); err != nil {
		d.HealthError = err.Error()
	}
	d.HealthPartial = hp.Next != ""
	for _, h := range hp.Subscriptions {
		if h.State != webhook.StateHealthy || h.Failed > 0 {
			d.Failing = append(d.Failing, h)
		}
	}
	slices.SortStableFunc(d.Failing, func(a, b webhookhttp.HealthView) int {
		if ra, rb := stateRank[a.State], stateRank[b.State]; ra != rb {
			return ra - rb
		}
		return cmp.Compare(b.Failed, a.Failed)
	})
	if len(d.Failing) > 10 {
		d.Failing = d.Failing[:10]
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}
