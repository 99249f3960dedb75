package webhook

// DeadLetterKind (stub until merged).
type DeadLetterKind string

// kinds
const (
	KindExhausted     DeadLetterKind = "exhausted"
	KindGone          DeadLetterKind = "gone"
	KindUndeliverable DeadLetterKind = "undeliverable"
	KindOrphaned      DeadLetterKind = "orphaned"
	KindUnhandled     DeadLetterKind = "unhandled"
)
