package webhook

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/switchyard-go/switchyard/pubsub"
)

// table is the set of subscriptions in force, indexed for matching: by
// topic (exact names, prefix patterns, "*"), then within a topic by the
// condition each filter implies (see index.go).
type table struct {
	byID     map[string]*route
	exact    map[string]*bucket
	prefixes map[string]*bucket // by prefix: "order." for "order.*"
	any      *bucket            // topic "*"
	list     []Subscription
	disabled []*route // matched only to log the events they skip
}

// compileTable compiles subs into a table, refusing the first that does
// not compile and two that share an ID. A subscription unchanged since
// prev (nil for none) keeps its compiled route, so changing one among
// thousands compiles one.
func compileTable(subs []Subscription, prev *table) (*table, error) {
	t := &table{byID: make(map[string]*route, len(subs)), exact: map[string]*bucket{}, prefixes: map[string]*bucket{},
		any: &bucket{}, list: make([]Subscription, 0, len(subs))}
	for _, s := range subs {
		r, err := reuseOrCompile(s, prev)
		if err != nil {
			return nil, err
		}
		if _, dup := t.byID[s.ID]; dup {
			return nil, fmt.Errorf("webhook: two subscriptions have the id %q", s.ID)
		}
		t.byID[s.ID] = r
		t.list = append(t.list, r.sub)
		if s.Disabled {
			t.disabled = append(t.disabled, r)
		} else {
			t.bucketOf(s.Topic).add(r)
		}
	}
	return t, nil
}

// bucketOf returns the bucket of a topic, made when missing.
func (t *table) bucketOf(topic string) *bucket {
	m, k := t.exact, topic
	switch p := topicPrefix(topic); {
	case topic == "*":
		return t.any
	case p != "":
		m, k = t.prefixes, p
	}
	bk, ok := m[k]
	if !ok {
		bk = &bucket{}
		m[k] = bk
	}
	return bk
}

// reuseOrCompile returns prev's route for s when s has not changed, else
// compiles it.
func reuseOrCompile(s Subscription, prev *table) (*route, error) {
	if prev != nil {
		if r, ok := prev.byID[s.ID]; ok && reflect.DeepEqual(r.sub, s) {
			return r, nil
		}
	}
	return compileRoute(s)
}

// buckets appends to out the buckets whose topic an event named name is
// of.
func (t *table) buckets(out []*bucket, name string) []*bucket {
	if bk, ok := t.exact[name]; ok {
		out = append(out, bk)
	}
	if len(t.prefixes) > 0 {
		for i := strings.IndexByte(name, '.'); i >= 0 && i < len(name)-1; {
			if bk, ok := t.prefixes[name[:i+1]]; ok {
				out = append(out, bk)
			}
			j := strings.IndexByte(name[i+1:], '.')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	if t.any.size > 0 {
		out = append(out, t.any)
	}
	return out
}

// match returns the enabled subscriptions whose topic and filter accept
// ev, and how many more had its topic but a filter that refused it or
// failed (or that the index knew would). The payload is decoded at most
// once, and only when a filter or the index needs it.
func (b *Bridge) match(t *table, ev pubsub.Event) (out []*route, filteredOut int) {
	var arr [4]*bucket
	bks := t.buckets(arr[:0], string(ev.Name))
	if len(bks) == 0 {
		return nil, 0
	}
	var env *FilterEnv
	envOf := func() *FilterEnv {
		if env == nil {
			e := filterEnv(ev)
			env = &e
		}
		return env
	}
	total := 0
	var cands []*route
	for _, bk := range bks {
		total += bk.size
		cands = bk.candidates(cands, envOf)
	}
	for _, rt := range cands {
		if rt.filter != nil {
			ok, err := runFilter(rt.filter, *envOf())
			if err != nil {
				b.cfg.Observer.FilterFailed(rt.sub.ID)
				if log, suppressed := b.filterWarns.allow(rt.sub.ID); log {
					b.cfg.Logger.Warn("webhook: filter failed, counted as no match", "subscription", rt.sub.ID, "event_id", ev.ID,
						"err", err, "suppressed", suppressed)
				}
			}
			if !ok || err != nil {
				continue
			}
		}
		out = append(out, rt)
	}
	return out, total - len(out)
}

// accepts reports whether ev matches the route's topic and filter; a
// filter that fails is no match.
func (r *route) accepts(ev pubsub.Event) bool {
	if !topicMatches(r.sub.Topic, string(ev.Name)) {
		return false
	}
	ok, err := runFilter(r.filter, filterEnv(ev))
	return ok && err == nil
}

// canGo reports whether the table would deliver dl now.
func (t *table) canGo(dl DeadLetter) bool {
	rt, ok := t.byID[dl.SubscriptionID]
	return ok && !rt.sub.Disabled && rt.accepts(dl.Event)
}
