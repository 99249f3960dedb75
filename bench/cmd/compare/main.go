// Command compare measures switchyard beside watermill (and beside raw
// go-redis and a bare net/http client) in one run on this machine, and
// writes the figures to docs/benchmarks.md and docs/benchmarks.png.
//
//	cd bench && go run ./cmd/compare            # full run, a few minutes
//	cd bench && go run ./cmd/compare -smoke     # seconds; writes nothing
//
// It starts its own redis-server on a loopback port unless -redis is
// given. Workloads run interleaved, round after round, and each figure is
// the median of the rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// workload is one thing measured; it returns one value per metric.
type workload struct {
	section string
	name    string
	metrics []string // "events/s", or "p50 ms", "p99 ms"
	sizes   []int
	run     func(ctx context.Context, e *env, size int) ([]float64, error)
}

var both = []int{256, 4096}

// small is for workloads whose cost lies elsewhere than in the payload.
var small = []int{256}

var workloads = []workload{
	{"Redis publish", "raw go-redis: pipelined XADD (ceiling)", []string{"events/s"}, both, rawXAdd},
	{"Redis publish", "switchyard: Emit of 100 events", []string{"events/s"}, both, syBatchEmit},
	{"Redis publish", "switchyard: single-event Emit, 64 goroutines", []string{"events/s"}, both, sySingleEmit64},
	{"Redis publish", "watermill-redisstream: Publish, 64 goroutines", []string{"events/s"}, both, wmPublish64},
	{"Redis consume", "raw go-redis: XREADGROUP 500 + XACK (ceiling)", []string{"events/s"}, both, rawReadAck},
	{"Redis consume", "switchyard: consume + ack, no-op handler", []string{"events/s"}, both, syConsumeAck},
	{"Redis consume", "watermill-redisstream: subscribe + ack", []string{"events/s"}, both, wmSubscribe},
	{"Redis end to end at 2k events/s", "switchyard", []string{"p50 ms", "p99 ms"}, both, syLatency},
	{"Redis end to end at 2k events/s", "watermill-redisstream", []string{"p50 ms", "p99 ms"}, both, wmLatency},
	{"In process, end to end", "switchyard memory", []string{"events/s"}, both, syMemory},
	{"In process, end to end", "watermill gochannel", []string{"events/s"}, both, wmGoChannel},
	{"Webhook deliveries to a local sink, 64 at once", "switchyard bridge (signed)", []string{"deliveries/s"}, both, bridgeDeliveries},
	{"Webhook deliveries to a local sink, 64 at once", "bare net/http client", []string{"deliveries/s"}, both, bareClient},
	{"Webhook deliveries to a local sink, 64 at once", "bare net/http client sending the bridge's requests", []string{"deliveries/s"}, both, bareSameRequests},
	{"Webhook bridge, Emit to delivery at 1k events/s", "switchyard bridge", []string{"p50 ms", "p99 ms"}, both, bridgeLatency},
	{subsSection, "1 subscription, one matches each event", []string{"events/s"}, small, manySubs(1, false)},
	{subsSection, "100 subscriptions, one matches each event", []string{"events/s"}, small, manySubs(100, false)},
	{subsSection, "1000 subscriptions, one matches each event", []string{"events/s"}, small, manySubs(1000, false)},
	{subsSection, "10000 subscriptions, one matches each event", []string{"events/s"}, small, manySubs(10000, false)},
	{subsSection, "1 subscription, matching every event", []string{"deliveries/s"}, small, manySubs(1, true)},
	{subsSection, "100 subscriptions, a tenth match each event", []string{"deliveries/s"}, small, manySubs(100, true)},
	{subsSection, "1000 subscriptions, a tenth match each event", []string{"deliveries/s"}, small, manySubs(1000, true)},
	{subsSection, "10000 subscriptions, a tenth match each event", []string{"deliveries/s"}, small, manySubs(10000, true)},
	{subsSection, "bare net/http client, 100 endpoints, 64 at once", []string{"deliveries/s"}, small, bareClientSpread},
	{subsSection, "bare net/http client sending the bridge's requests, 100 endpoints", []string{"deliveries/s"}, small, bareSameRequestsSpread},
	{partitionsSection, "1 partition (one stream)", []string{"deliveries/s"}, small, bridgePartitions(1)},
	{partitionsSection, "3 partitions", []string{"deliveries/s"}, small, bridgePartitions(3)},
	{partitionsSection, "6 partitions", []string{"deliveries/s"}, small, bridgePartitions(6)},
	{"Scaling on one Redis: consume + ack", "1 consumer", []string{"events/s"}, both, scaleConsumers(1)},
	{"Scaling on one Redis: consume + ack", "2 consumers, one group", []string{"events/s"}, both, scaleConsumers(2)},
	{"Scaling on one Redis: consume + ack", "4 consumers, one group", []string{"events/s"}, both, scaleConsumers(4)},
	{"Scaling on one Redis: consume + ack", "1 partition", []string{"events/s"}, both, scalePartitions(1)},
	{"Scaling on one Redis: consume + ack", "2 partitions", []string{"events/s"}, both, scalePartitions(2)},
	{"Scaling on one Redis: consume + ack", "4 partitions", []string{"events/s"}, both, scalePartitions(4)},
}

// key names one figure: workload, size, metric.
type key struct {
	name   string
	size   int
	metric string
}

func main() {
	rounds := flag.Int("rounds", 3, "rounds; each figure is the median")
	n := flag.Int("n", 100000, "events per throughput run")
	addr := flag.String("redis", "", "an existing redis-server to use (default: start one)")
	out := flag.String("out", "../docs/benchmarks.md", "markdown report")
	png := flag.String("png", "../docs/benchmarks.png", "chart")
	smoke := flag.Bool("smoke", false, "a quick pass that checks every workload runs, and writes nothing")
	only := flag.String("only", "", "run only workloads whose section or name contains this, and write nothing")
	flag.Parse()
	if *smoke {
		*rounds, *n = 1, 2000
	}
	log.SetFlags(0)

	if *addr == "" {
		srv, err := startRedis()
		if err != nil {
			log.Fatal(err)
		}
		defer srv.stop()
		*addr = srv.addr
	}
	client := goredis.NewClient(&goredis.Options{Addr: *addr, PoolSize: 128})
	defer client.Close()
	ctx := context.Background()
	version, err := redisVersion(ctx, client)
	if err != nil {
		log.Fatal(err)
	}
	e := &env{client: client, addr: *addr, n: *n}

	results := map[key][]float64{}
	for round := 1; round <= *rounds; round++ {
		for _, w := range workloads {
			if *only != "" && !strings.Contains(w.section+" "+w.name, *only) {
				continue
			}
			for _, size := range w.sizes {
				if err := client.FlushAll(ctx).Err(); err != nil {
					log.Fatal(err)
				}
				vals, err := w.run(ctx, e, size)
				if err != nil {
					log.Fatalf("%s / %s (%d B): %v", w.section, w.name, size, err)
				}
				for i, m := range w.metrics {
					k := key{w.name + "\x00" + w.section, size, m}
					results[k] = append(results[k], vals[i])
				}
				log.Printf("round %d  %-48s %-50s %5d B  %v", round, w.section, w.name, size, format(vals))
			}
		}
	}
	med := map[key]float64{}
	for k, v := range results {
		slices.Sort(v)
		med[k] = v[len(v)/2]
	}
	if *smoke || *only != "" {
		log.Printf("every workload chosen ran; nothing written")
		return
	}
	m := machine{cores: runtime.NumCPU(), cpu: cpuModel(), goVersion: runtime.Version(), redis: version,
		rounds: *rounds, n: *n, date: time.Now().UTC().Format("2006-01-02")}
	if err := os.WriteFile(*out, []byte(markdown(m, med)), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := chart(med, *png); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s and %s", *out, *png)
}

func format(vals []float64) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%.4g", v)
	}
	return strings.Join(parts, " / ")
}

func redisVersion(ctx context.Context, c *goredis.Client) (string, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("redis at %s: %w", c.Options().Addr, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "unknown", nil
}

func cpuModel() string {
	out, err := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output()
	if err != nil {
		return "unknown CPU"
	}
	return strings.TrimSpace(string(out))
}
