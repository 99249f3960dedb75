package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/internal/redact"
	"github.com/switchyard-go/switchyard/redis"
	"github.com/switchyard-go/switchyard/webhook"
)

// The values of the config key start.
const (
	startEnd       = "end"
	startBeginning = "beginning"
)

// groupStart is where the redis backend makes the bridge's group.
func (c *Config) groupStart() redis.Start {
	if c.Start == startBeginning {
		return redis.StartBeginning
	}
	return redis.StartNew
}

// groupState is what the start log says of the group.
type groupState int

const (
	groupNew      groupState = iota // made at start
	groupExists                     // goes on from where it is
	groupRecorded                   // missing, made again where it last delivered
)

// readGroupState tells whether the bridge's group exists on its stream,
// or is missing with a recorded position, so that the start log can say
// whether start applies. It is asked before the subscriber makes the
// group; an error leaves the question open.
func readGroupState(ctx context.Context, client goredis.UniversalClient, cfg *Config) (groupState, error) {
	groups, err := client.XInfoGroups(ctx, cfg.Stream).Result()
	if err != nil && !strings.Contains(err.Error(), "no such key") {
		return groupNew, err
	}
	for _, g := range groups {
		if g.Name == cfg.Group {
			return groupExists, nil
		}
	}
	n, err := client.Exists(ctx, redis.PositionKey(cfg.Stream, cfg.Group)).Result()
	if err != nil {
		return groupNew, err
	}
	if n > 0 {
		return groupRecorded, nil
	}
	return groupNew, nil
}

// logGroupStart says where the consumer group starts (config key start)
// and whether that applies now: a group that exists goes on from where it
// is, and one that vanished is made again where it last delivered,
// whatever start says.
func logGroupStart(log *slog.Logger, cfg *Config, state groupState, err error) {
	msg := "webhook-bridge: group starts at the end of the stream: events added before the group existed are skipped"
	if cfg.Start == startBeginning {
		msg = "webhook-bridge: group starts at the beginning of the stream: events added before the group existed are delivered too"
	}
	attrs := []any{"start", cfg.Start, "group", cfg.Group, "stream", cfg.Stream}
	switch {
	case err != nil:
		attrs = append(attrs, "group_exists", "unknown", "err", err)
	case state == groupExists:
		msg += " (the group exists already: it goes on from where it is)"
		attrs = append(attrs, "group_exists", true)
	case state == groupRecorded:
		msg = "webhook-bridge: the group is missing but known: made again after the last event it delivered, so events added since are delivered and none twice (start does not apply)"
		attrs = append(attrs, "group_exists", false, "position_key", redis.PositionKey(cfg.Stream, cfg.Group))
	default:
		attrs = append(attrs, "group_exists", false)
	}
	log.Info(msg, attrs...)
}

// startLogMaxSubscriptions bounds the subscriptions the start log lists
// one by one; a bridge may hold thousands.
const startLogMaxSubscriptions = 100

// demoReceiverPath is where the bridge serves its demo receiver.
const demoReceiverPath = "/demo/receiver"

// logStart says how the bridge runs: its version, the backend, whether
// JWT auth, the admin API and the private-address guard are on, and the
// subscriptions loaded (id, topic, and URL without credentials). It warns
// about subscriptions that deliver to this bridge's own demo receiver
// while the demo is off. addr is the address the bridge listens on.
func logStart(log *slog.Logger, cfg *Config, subs []webhook.Subscription, addr string) {
	backend := "memory"
	if cfg.onRedis() {
		backend = "redis"
	}
	log.Info("webhook-bridge: starting", "version", versionLine(), "backend", backend,
		"jwt_auth", onOff(cfg.Auth.JWTSecret != ""), "admin_api", onOff(cfg.Auth.AdminToken != ""),
		"targets.deny_private", onOff(cfg.Targets.DenyPrivate), "demo", onOff(cfg.Demo.Enabled),
		"subscriptions", len(subs))
	fromConfig := map[string]bool{}
	for _, s := range cfg.Subscriptions {
		fromConfig[s.ID] = true
	}
	self := ownAddresses(addr)
	for i, s := range subs {
		if i < startLogMaxSubscriptions {
			source := "api"
			if fromConfig[s.ID] {
				source = "config"
			}
			attrs := []any{"id", s.ID, "topic", s.Topic, "url", redact.Endpoint(s.URL), "source", source}
			if s.Disabled {
				attrs = append(attrs, "disabled", true)
			}
			log.Info("webhook-bridge: subscription", attrs...)
		} else if i == startLogMaxSubscriptions {
			log.Info("webhook-bridge: more subscriptions not listed here", "not_listed", len(subs)-i)
		}
		if !cfg.Demo.Enabled && self.demoReceiver(s.URL) {
			log.Warn("webhook-bridge: subscription delivers to this bridge's own "+demoReceiverPath+", but the demo is off (demo.enabled): "+
				"nothing answers there, so every delivery fails and ends dead-lettered; turn the demo on or point the subscription elsewhere",
				"id", s.ID, "url", redact.Endpoint(s.URL))
		}
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// selfAddrs are the host names and addresses by which a URL reaches this
// bridge, and its port.
type selfAddrs struct {
	port  string
	hosts map[string]bool
}

// ownAddresses returns the names of this bridge at addr: loopback and
// "localhost", the listen host, the machine's host name, and, when it
// listens on every interface, the interfaces' addresses. No DNS is asked.
func ownAddresses(addr string) selfAddrs {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return selfAddrs{}
	}
	s := selfAddrs{port: port, hosts: map[string]bool{"localhost": true, strings.ToLower(host): true}}
	if name, err := os.Hostname(); err == nil {
		s.hosts[strings.ToLower(name)] = true
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					s.hosts[n.IP.String()] = true
				}
			}
		}
	}
	return s
}

// demoReceiver reports whether raw is this bridge's demo receiver.
func (s selfAddrs) demoReceiver(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || s.port == "" || strings.TrimSuffix(u.Path, "/") != demoReceiverPath {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port != s.port {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		host = ip.String()
	}
	return s.hosts[host] || strings.HasSuffix(host, ".localhost")
}
