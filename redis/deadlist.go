package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// DeadEntry is one entry of a stream's dead-letter stream ([DeadKey]): an
// entry a subscriber gave up on before or while handling it, with why.
type DeadEntry struct {
	// ID is the entry's ID in the dead-letter stream.
	ID string
	// Event is the event as far as it could be read; Malformed says what
	// could not.
	Event pubsub.Event
	// Malformed is the decoding error of an entry that breaks the wire
	// format or that [pubsub.Event.Validate] refuses, nil otherwise.
	Malformed error
	// Reason says why the subscriber gave up.
	Reason string
	// Group is the consumer group that gave up.
	Group string
	// EntryID is the entry's ID in its own stream.
	EntryID string
	// Deliveries is how many times the entry had been delivered.
	Deliveries int
	// At is when it was dead-lettered.
	At time.Time
}

// ListDead reads up to count entries of stream's dead-letter stream,
// oldest first, after the dead-letter entry ID after ("" for the start)
// and up to until ("" for the end). It never fails on an entry's content:
// what cannot be read is reported in the entry.
func ListDead(ctx context.Context, client goredis.UniversalClient, stream, after, until string, count int64) ([]DeadEntry, error) {
	start, end := "-", "+"
	if after != "" {
		start = "(" + after
	}
	if until != "" {
		end = until
	}
	msgs, err := client.XRangeN(ctx, DeadKey(stream), start, end, count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadEntry, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { s, _ := m.Values[k].(string); return s }
		values := make(map[string]any, len(m.Values))
		for k, v := range m.Values {
			switch k {
			case fieldDeadReason, fieldDeadGroup, fieldDeadEntry, fieldDeadAttempts, fieldDeadAt:
			default:
				values[k] = v
			}
		}
		entryID := str(fieldDeadEntry)
		if entryID == "" {
			entryID = m.ID
		}
		ev, decodeErr := decode(entryID, values)
		n, _ := strconv.Atoi(str(fieldDeadAttempts))
		at, _ := time.Parse(time.RFC3339Nano, str(fieldDeadAt))
		out = append(out, DeadEntry{
			ID: m.ID, Event: ev, Malformed: decodeErr, Reason: str(fieldDeadReason), Group: str(fieldDeadGroup),
			EntryID: entryID, Deliveries: n, At: at,
		})
	}
	return out, nil
}
