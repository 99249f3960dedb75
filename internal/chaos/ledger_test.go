package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// ledger is what the consumers' files say: every handling that returned
// nil, across processes, restarts and Redis restarts.
type ledger struct {
	handled map[pubsub.ID]int // handlings per event
	retried int               // handlings with Meta.Attempts > 0
	lines   int
}

// readLedger reads every consumer's file in dir. A line cut short by a
// kill in mid-write (never seen with O_APPEND writes this small, but
// possible) is skipped.
func readLedger(dir string) (ledger, error) {
	l := ledger{handled: map[pubsub.ID]int{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.handled"))
	if err != nil {
		return l, err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return l, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 3 {
				continue
			}
			attempts, err := strconv.Atoi(fields[1])
			if err != nil {
				continue
			}
			l.lines++
			l.handled[pubsub.ID(fields[0])]++
			if attempts > 0 {
				l.retried++
			}
		}
		_ = f.Close()
		if err := sc.Err(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// deadLetters is the content of a stream's dead-letter stream.
type deadLetters struct {
	ids   map[pubsub.ID]bool // events named by an id field
	total int                // entries, with or without an id
	noID  int                // entries without an id field (garbage)
}

// readDead reads the dead-letter stream of stream ([redis.DeadKey]).
func readDead(ctx context.Context, client *goredis.Client, stream string) (deadLetters, error) {
	d := deadLetters{ids: map[pubsub.ID]bool{}}
	entries, err := client.XRange(ctx, redis.DeadKey(stream), "-", "+").Result()
	if err != nil {
		return d, err
	}
	for _, e := range entries {
		d.total++
		if id, ok := e.Values["id"].(string); ok && id != "" {
			d.ids[pubsub.ID(id)] = true
		} else {
			d.noID++
		}
	}
	return d, nil
}

// outcome is one scenario's figures, one row of the table.
type outcome struct {
	scenario    string
	emitted     int // Emit returned nil
	failedEmits int // Emit returned an error (not owed)
	handled     int // distinct events handled
	duplicates  int // handlings beyond the first of each event
	retried     int // handlings with Meta.Attempts > 0
	dead        int // entries in the dead-letter stream
	deadOthers  int // of which name no event that was emitted
	lost        int // emitted, neither handled nor dead-lettered
	lostByRedis int // of those, lost by a Redis restart without persistence (scenario c); not in lost
	stalled     bool
	why         string // what the settling saw
}

// header and row are the markdown table the suite logs.
const header = "| scenario | emitted | handled | duplicates | dead-lettered | lost | stalled |\n|---|---|---|---|---|---|---|"

func (o outcome) row() string {
	lost := strconv.Itoa(o.lost)
	if o.lostByRedis > 0 {
		lost += fmt.Sprintf(" (+%d lost by Redis, no persistence)", o.lostByRedis)
	}
	stalled := "no"
	if o.stalled {
		stalled = "**yes**: " + o.why
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %s | %s |", o.scenario, o.emitted, o.handled, o.duplicates, o.dead, lost, stalled)
}

// settleOpts bounds the wait for a scenario to settle.
type settleOpts struct {
	stallAfter time.Duration      // no progress for this long with events outstanding is a stall
	limit      time.Duration      // the whole wait, progress or not
	quiet      time.Duration      // after that, how long to wait for the group's pending list to empty
	mayLose    map[pubsub.ID]bool // events Redis may lose by itself (restart without persistence)
}

// settle waits until every event whose Emit returned nil is handled or
// dead-lettered and the group has nothing pending, or until handling
// stops progressing (a stall), or until the limit; then it computes the
// outcome. It polls the consumers' files and Redis every 100ms: a bounded
// loop with a short pause, not a sleep used as synchronisation.
func (s *scenario) settle(opts settleOpts) outcome {
	s.t.Helper()
	ctx := context.Background()
	owed, failed := s.em.emitted()
	o := outcome{scenario: s.name, emitted: len(owed), failedEmits: failed}

	read := func() (ledger, deadLetters, int) {
		l, err := readLedger(s.dir)
		if err != nil {
			s.t.Fatal(err)
		}
		d, err := readDead(ctx, s.admin, s.stream)
		if err != nil {
			s.t.Logf("reading dead letters: %v", err)
		}
		outstanding := 0
		for _, id := range owed {
			if l.handled[id] == 0 && !d.ids[id] && !opts.mayLose[id] {
				outstanding++
			}
		}
		return l, d, outstanding
	}

	start := time.Now()
	lastProgress, progress := start, -1
	for {
		l, d, outstanding := read()
		now := time.Now()
		if p := l.lines + d.total; p != progress {
			progress, lastProgress = p, now
		}
		if outstanding == 0 {
			o.why = fmt.Sprintf("settled in %v", now.Sub(start).Round(100*time.Millisecond))
			break
		}
		if now.Sub(lastProgress) > opts.stallAfter {
			o.stalled = true
			o.why = fmt.Sprintf("no handling for %v with %d events outstanding", opts.stallAfter, outstanding)
			break
		}
		if now.Sub(start) > opts.limit {
			o.stalled = true
			o.why = fmt.Sprintf("%d events still outstanding after %v", outstanding, opts.limit)
			break
		}
		time.Sleep(100 * time.Millisecond) // polling files and Redis, bounded above
	}

	// Duplicates can still be on their way: entries taken over from a
	// consumer that still holds them in memory, handlers resumed. Wait,
	// bounded by opts.quiet, until the group's pending list is empty and
	// no handling or dead letter has been added for a second.
	if !o.stalled {
		const quietFor = time.Second
		lastChange := time.Now()
		for deadline := time.Now().Add(opts.quiet); ; {
			l, d, _ := read()
			now := time.Now()
			if p := l.lines + d.total; p != progress {
				progress, lastChange = p, now
			}
			n, err := s.pending(ctx)
			if (err != nil || n == 0) && now.Sub(lastChange) >= quietFor {
				break
			}
			if now.After(deadline) {
				o.why += fmt.Sprintf("; not quiet %v later (%d entries pending)", opts.quiet, n)
				break
			}
			time.Sleep(100 * time.Millisecond) // polling files and Redis, bounded above
		}
	}

	l, d, _ := read()
	o.dead, o.retried = d.total, l.retried
	owedSet := make(map[pubsub.ID]bool, len(owed))
	for _, id := range owed {
		owedSet[id] = true
		switch {
		case l.handled[id] > 0 || d.ids[id]:
		case opts.mayLose[id]:
			o.lostByRedis++
		default:
			o.lost++
		}
	}
	for _, n := range l.handled {
		o.handled++
		o.duplicates += n - 1
	}
	for id := range d.ids {
		if !owedSet[id] {
			o.deadOthers++
		}
	}
	o.deadOthers += d.noID
	return o
}

// pending returns the number of entries pending in the group.
func (s *scenario) pending(ctx context.Context) (int64, error) {
	p, err := s.admin.XPending(ctx, s.stream, s.group).Result()
	if err != nil {
		return 0, err
	}
	return p.Count, nil
}

// handledCount returns how many distinct events the consumers handled.
func (s *scenario) handledCount() int {
	l, err := readLedger(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	return len(l.handled)
}

// waitHandled waits until at least n distinct events are handled, for at
// most limit, polling the files every 20ms; it reports whether they were.
func (s *scenario) waitHandled(n int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); s.handledCount() < n; {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling files, bounded above
	}
	return true
}

// waitIDsHandled waits until every one of ids is handled, for at most
// limit; it returns how many are.
func (s *scenario) waitIDsHandled(ids []pubsub.ID, limit time.Duration) int {
	count := func() int {
		l, err := readLedger(s.dir)
		if err != nil {
			s.t.Fatal(err)
		}
		n := 0
		for _, id := range ids {
			if l.handled[id] > 0 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(limit); ; {
		n := count()
		if n == len(ids) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond) // polling files, bounded above
	}
}
