// Package wmconform makes switchyard's Redis Streams backend (package redis)
// look like a watermill Pub/Sub, so that watermill's own test suite
// (github.com/ThreeDotsLabs/watermill/pubsub/tests) can check it; see
// conformance_test.go.
//
// The mapping:
//
//   - A watermill topic is a stream: Publish writes events whose Name is
//     the topic to the stream of that name, and Subscribe(ctx, topic)
//     makes a redis.Subscriber of that stream in the adapter's consumer
//     group, with a consumer name of its own.
//   - The message UUID is the event ID.
//   - The event payload is an envelope, JSON {"metadata": {...},
//     "payload": "<base64>"}: the switchyard wire format has no field for
//     free-form metadata, and watermill's suite checks that metadata
//     round-trips. So the payload on the wire is not the watermill payload
//     byte for byte; switchyard handlers of the same stream would see the
//     envelope. An entry whose payload is not such an envelope is refused
//     with pubsub.ErrPermanent (dead-lettered at once).
//   - Each event is handed to the subscription's channel as a
//     *message.Message whose context ends when the handler returns. The
//     handler returns nil on Ack, an error on Nack (the backend retries
//     after its Backoff, and after MaxAttempts deliveries moves the event
//     to the dead-letter stream, where watermill would redeliver forever),
//     and the context's error when the subscription ends first (the entry
//     stays pending and is delivered again).
//   - The channel is closed once the subscription's context is done or the
//     Subscriber is closed, after its Consume has returned.
package wmconform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchyard-go/switchyard/pubsub"
	"github.com/switchyard-go/switchyard/redis"
)

// envelope is what the adapter stores as an event's payload.
type envelope struct {
	Metadata map[string]string `json:"metadata,omitempty"`
	Payload  []byte            `json:"payload"`
}

// Publisher is a watermill message.Publisher writing through a
// redis.Publisher. It does not close the client.
type Publisher struct {
	pub *redis.Publisher
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher that writes each topic to the stream of
// the same name through client, which the caller keeps owning.
func NewPublisher(client goredis.UniversalClient) (*Publisher, error) {
	pub, err := redis.NewPublisher(client, redis.PublisherConfig{
		Route: func(n pubsub.Name) string { return string(n) },
	})
	if err != nil {
		return nil, err
	}
	return &Publisher{pub: pub}, nil
}

// Publish writes the messages to the topic's stream, in order, in one
// round trip; it returns nil only when Redis confirmed every one.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	events := make([]pubsub.Event, len(msgs))
	for i, msg := range msgs {
		payload, err := json.Marshal(envelope{Metadata: msg.Metadata, Payload: msg.Payload})
		if err != nil {
			return fmt.Errorf("wmconform: encoding message %s: %w", msg.UUID, err)
		}
		events[i] = pubsub.Event{ID: pubsub.ID(msg.UUID), Name: pubsub.Name(topic), Payload: payload}
	}
	return p.pub.Emit(context.Background(), events...)
}

// Close waits for Publish calls in flight; later ones fail.
func (p *Publisher) Close() error { return p.pub.Close() }

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Group is the consumer group of every subscription: subscriptions
	// (and Subscribers) sharing it split a topic's messages.
	Group string
	// Redis is the template of each subscription's redis.SubscriberConfig;
	// its Streams, Group and Consumer are set by Subscribe.
	Redis redis.SubscriberConfig
	// ErrorHandler receives the errors the backend handled itself.
	// default: nil, the backend's Logger
	ErrorHandler pubsub.ErrorHandler
}

// Subscriber is a watermill message.Subscriber on redis.Subscribers, one
// per Subscribe call. It does not close the client.
type Subscriber struct {
	client goredis.UniversalClient
	cfg    SubscriberConfig

	mu      sync.Mutex
	closed  bool
	cancels []context.CancelFunc
	running sync.WaitGroup // subscriptions whose channel is not closed yet
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber reading through client, which the
// caller keeps owning.
func NewSubscriber(client goredis.UniversalClient, cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Group == "" {
		return nil, errors.New("wmconform: SubscriberConfig.Group is required")
	}
	return &Subscriber{client: client, cfg: cfg}, nil
}

// errNacked is what the handler returns for a Nacked message.
var errNacked = errors.New("wmconform: message nacked")

// Subscribe makes the group on the topic's stream (see
// redis.SubscriberConfig.Start for where a new group begins) and consumes
// it until ctx is done or the Subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("wmconform: subscriber closed")
	}
	cfg := s.cfg.Redis
	cfg.Streams = []string{topic}
	cfg.Group = s.cfg.Group
	cfg.Consumer = s.cfg.Group + "-" + watermill.NewShortUUID()
	sub, err := redis.NewSubscriber(ctx, s.client, cfg)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	s.cancels = append(s.cancels, cancel)
	out := make(chan *message.Message)
	handle := func(hctx context.Context, ev pubsub.Event) error {
		var env envelope
		if err := json.Unmarshal(ev.Payload, &env); err != nil {
			return fmt.Errorf("wmconform: event %s holds no message envelope: %w: %w", ev.ID, err, pubsub.ErrPermanent)
		}
		msg := message.NewMessage(string(ev.ID), env.Payload)
		for k, v := range env.Metadata {
			msg.Metadata.Set(k, v)
		}
		mctx, done := context.WithCancel(hctx)
		defer done()
		msg.SetContext(mctx)
		select {
		case out <- msg:
		case <-hctx.Done():
			return hctx.Err()
		}
		select {
		case <-msg.Acked():
			return nil
		case <-msg.Nacked():
			return errNacked
		case <-hctx.Done():
			return hctx.Err()
		}
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		sub.Consume(ctx, handle, s.cfg.ErrorHandler)
		_ = sub.Close()
		close(out)
	}()
	return out, nil
}

// Close ends every subscription and returns once their channels are
// closed. Messages not acknowledged stay pending in the group.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, cancel := range s.cancels {
		cancel()
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}
