package inbox

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
)

// RedisStore keeps claims in Redis: one string key per handler key and
// event, "p" while handled (expiring with the lease), "d" once done
// (expiring after Keep). It never closes the client.
type RedisStore struct {
	// Client is the caller's.
	Client goredis.UniversalClient
	// Prefix starts every key.
	// default: "switchyard:inbox"
	Prefix string
}

func (s RedisStore) key(key string, id pubsub.ID) string {
	prefix := s.Prefix
	if prefix == "" {
		prefix = "switchyard:inbox"
	}
	return prefix + ":" + key + ":" + string(id)
}

// Claim sets the key to "p" if it is absent (SET NX PX).
func (s RedisStore) Claim(ctx context.Context, key string, id pubsub.ID, lease time.Duration) (State, error) {
	k := s.key(key, id)
	for range 3 { // the key may expire between SET and GET
		ok, err := s.Client.SetNX(ctx, k, "p", lease).Result()
		if err != nil {
			return 0, err
		}
		if ok {
			return Claimed, nil
		}
		v, err := s.Client.Get(ctx, k).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if v == "d" {
			return AlreadyDone, nil
		}
		return Busy, nil
	}
	return Busy, nil
}

// Done sets the key to "d" for keep.
func (s RedisStore) Done(ctx context.Context, key string, id pubsub.ID, keep time.Duration) error {
	return s.Client.Set(ctx, s.key(key, id), "d", keep).Err()
}

var releaseClaim = goredis.NewScript(`if redis.call('GET', KEYS[1]) == 'p' then return redis.call('DEL', KEYS[1]) end return 0`)

// Release deletes the key while it still says "p".
func (s RedisStore) Release(ctx context.Context, key string, id pubsub.ID) error {
	return releaseClaim.Run(ctx, s.Client, []string{s.key(key, id)}).Err()
}
