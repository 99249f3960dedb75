package webhook

import (
	"context"
	"sort"
	"strconv"
	"sync"
)

// MemoryDeadLetters is a [DeadLetterStore] in process memory, the default
// when no store is configured. It is safe for concurrent use. Its IDs are
// decimal integers, counting from 1. Set MaxLen before first use; the zero
// value is ready to use.
type MemoryDeadLetters struct {
	// MaxLen is how many dead letters are kept: adding one more drops the
	// oldest, counted by [MemoryDeadLetters.Dropped]. A negative value
	// keeps every dead letter.
	// default: DefaultDeadLetterMaxLen
	MaxLen int

	mu      sync.Mutex
	seq     uint64            // the last ID given
	entries []memoryDeadEntry // ascending IDs; removed ones stay as tombstones until compacted
	live    int
	dropped int64
}

type memoryDeadEntry struct {
	n    uint64
	gone bool
	dl   DeadLetter
}

func (m *MemoryDeadLetters) maxLen() int {
	if m.MaxLen == 0 {
		return DefaultDeadLetterMaxLen
	}
	return m.MaxLen
}

// Add stores dl, dropping the oldest dead letter when the store holds
// MaxLen already.
func (m *MemoryDeadLetters) Add(_ context.Context, dl DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	dl.ID = strconv.FormatUint(m.seq, 10)
	dl.withKind()
	m.entries = append(m.entries, memoryDeadEntry{n: m.seq, dl: dl})
	m.live++
	if limit := m.maxLen(); limit > 0 {
		for i := 0; m.live > limit && i < len(m.entries); i++ {
			if !m.entries[i].gone {
				m.removeAt(i)
				m.dropped++
			}
		}
	}
	m.tidy()
	return nil
}

// removeAt turns entry i into a tombstone.
func (m *MemoryDeadLetters) removeAt(i int) {
	m.entries[i] = memoryDeadEntry{n: m.entries[i].n, gone: true}
	m.live--
}

// tidy drops leading tombstones and compacts once tombstones outnumber
// live entries, so that both Add and Remove cost O(1) amortized (plus the
// search for an ID).
func (m *MemoryDeadLetters) tidy() {
	i := 0
	for i < len(m.entries) && m.entries[i].gone {
		i++
	}
	m.entries = m.entries[i:]
	if dead := len(m.entries) - m.live; dead > 64 && dead > m.live {
		kept := make([]memoryDeadEntry, 0, m.live+m.live/4+1)
		for _, e := range m.entries {
			if !e.gone {
				kept = append(kept, e)
			}
		}
		m.entries = kept
	}
}

// search returns the index of the first entry whose ID is above n.
func (m *MemoryDeadLetters) search(n uint64) int {
	return sort.Search(len(m.entries), func(i int) bool { return m.entries[i].n > n })
}

func validMemoryID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// List returns a page of copies of the dead letters, oldest first; see
// [DeadLetterStore.List]. Cursors look like "12..40".
func (m *MemoryDeadLetters) List(_ context.Context, after string, limit int) ([]DeadLetter, string, error) {
	if limit < 1 {
		limit = DefaultDeadLetterPage
	}
	from, until, err := parseCursor(after, validMemoryID)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	end := m.seq
	if until != "" {
		end, _ = strconv.ParseUint(until, 10, 64)
	}
	start := 0
	if from != "" {
		n, _ := strconv.ParseUint(from, 10, 64)
		start = m.search(n)
	}
	var page []DeadLetter
	for i := start; i < len(m.entries) && m.entries[i].n <= end; i++ {
		e := m.entries[i]
		if e.gone {
			continue
		}
		if len(page) == limit {
			return page, page[len(page)-1].ID + cursorSep + strconv.FormatUint(end, 10), nil
		}
		page = append(page, e.dl)
	}
	return page, "", nil
}

// Remove deletes the dead letters with these IDs.
func (m *MemoryDeadLetters) Remove(_ context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			continue
		}
		if i := m.search(n) - 1; i >= 0 && m.entries[i].n == n && !m.entries[i].gone {
			m.removeAt(i)
		}
	}
	m.tidy()
	return nil
}

// Len returns how many dead letters the store holds.
func (m *MemoryDeadLetters) Len(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(m.live), nil
}

// Dropped returns how many dead letters were dropped, oldest first, to
// keep the store within MaxLen.
func (m *MemoryDeadLetters) Dropped() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}
