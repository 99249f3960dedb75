// Package inbox makes event handlers idempotent: a [Middleware] (or a
// [Registry] of handlers per event name) records, in a [Store], which
// events each handler key has handled, skips redeliveries of them, and
// defers a duplicate that arrives while the first is still being handled.
// Combined with the at-least-once delivery of every pubsub backend, each
// event's effect happens once.
//
// An event is recorded as handled only after its handler returned nil; a
// failed handler releases its claim, so the redelivery runs it again. A
// process that dies mid-handler leaves a claim that lapses after Lease.
//
// Stores: [RedisStore] (SET NX with a TTL) and [SQLStore] (a table in
// PostgreSQL or SQLite, which can live in the service's own database).
//
//	reg := inbox.NewRegistry(inbox.RedisStore{Client: client}, inbox.Options{Timeout: 30 * time.Second})
//	_ = reg.Register("order.created", "billing.charge", chargeCard)
//	_ = reg.Register("order.created", "email.receipt", sendReceipt)
//	go sub.Consume(ctx, reg.Handle, nil)
package inbox
