package sqlqueue

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status values every queue table uses, but for the done one, which the
// table names.
const (
	Pending = "pending"
	Dead    = "dead"
)

// Table describes a queue table. Every queue table has the columns
// tries, next_attempt_ms, claimed_by, claimed_until_ms, last_error and
// done_at_ms (see [LeaseColumns]) besides its key, its status and what it
// carries.
type Table struct {
	// Name is the table's name.
	Name string
	// Key names the columns that identify a row.
	Key []string
	// Columns are what a claim returns of each row, after the key and the
	// tries.
	Columns []string
	// Order is the claim's ORDER BY: oldest first.
	Order string
	// Status is the status column, holding Pending, Done or Dead.
	Status string
	// Done is the status of a row that was processed.
	Done string
	// OrderingKey, when set, is a column whose rows of one value are
	// processed one batch at a time in Key order, a later row never
	// before an earlier pending one: only the oldest pending row of a
	// value is claimed (see [Queue.Claim]). Key must then be a single
	// integer column that grows in the order rows of one value commit.
	OrderingKey string
}

// LeaseColumns are the columns every queue table has besides its own, in
// the SQL of d, with their defaults.
func (d Dialect) LeaseColumns() string {
	return `tries            INTEGER NOT NULL DEFAULT 0,
			next_attempt_ms  BIGINT  NOT NULL DEFAULT 0,
			claimed_by       ` + d.Text(255) + ` NOT NULL DEFAULT '',
			claimed_until_ms BIGINT  NOT NULL DEFAULT 0,
			last_error       ` + d.Text(1024) + ` NOT NULL DEFAULT '',
			done_at_ms       BIGINT  NOT NULL DEFAULT 0`
}

// Backoff is the wait before try n+1 after n failed tries.
type Backoff func(n int) time.Duration

// Queue claims, marks and cleans rows of a table. Its fields are set
// once, before use; it is safe for concurrent use.
type Queue struct {
	DB      *sql.DB
	Dialect Dialect
	Table   Table
	// Owner is written into the rows this queue claims.
	Owner string
	// Lease is how long claimed rows belong to Owner.
	Lease time.Duration
	// MaxTries is how many failed tries make a row dead.
	MaxTries int
	// Backoff is the wait after a failed try.
	Backoff Backoff
	// DoneSet, when set, is added to the SET of a row marked done; $1 in
	// it is the time in Unix milliseconds.
	DoneSet string
	// Where, when set, is a condition rows must also meet to be claimed
	// or cleaned, so that queues with disjoint conditions share a table.
	// It names the table's columns unqualified, and $1, $2, … in it stand
	// for WhereArgs (no $ may appear in its literals). It must hold on
	// columns that do not change while a row is pending, and cannot be
	// combined with Table.OrderingKey.
	Where     string
	WhereArgs []any
}

// where is " AND (Where)" with its placeholders counted from $from, and
// its args; both empty without a Where.
func (q *Queue) where(from int) (string, []any) {
	if q.Where == "" {
		return "", nil
	}
	return " AND (" + shift(q.Where, from-1) + ")", q.WhereArgs
}

// shift adds by to the number of every $N in query.
func shift(query string, by int) string {
	return placeholders(query, func(n int) string { return "$" + strconv.Itoa(n+by) })
}

// Row is a claimed row.
type Row[T any] struct {
	// Key holds the values of Table.Key.
	Key []any
	// Tries is how many tries failed before this claim.
	Tries int
	// OrderingKey is the row's ordering key, when the table has one.
	OrderingKey string
	// Value is what the scan made of Table.Columns.
	Value T
}

// Scan reads Table.Columns of one row into a T.
type Scan[T any] func(scan func(dest ...any) error) (T, error)

// Claim takes up to n rows that are pending, due and not claimed by
// anyone whose lease runs, oldest first, for q.Owner until the lease
// ends. On PostgreSQL and MySQL it skips rows other claims hold locked,
// so several queues on one table never claim the same row; SQLite's
// single writer makes the claim atomic.
//
// With an ordering key, a row is claimed only when no earlier row of its
// ordering key is pending (claimed or not, due or not): the oldest
// pending row of each value, and after it, in the same claim, the rows of
// that value that follow it while they are due. Nobody else can claim
// those, since their oldest is pending and claimed here.
func Claim[T any](ctx context.Context, q *Queue, n int, scan Scan[T]) ([]Row[T], error) {
	if q.Where != "" && q.Table.OrderingKey != "" {
		return nil, fmt.Errorf("claiming rows of %s: a Where condition cannot be combined with an ordering key", q.Table.Name)
	}
	now := time.Now()
	var rows []Row[T]
	var err error
	if q.Dialect == MySQL {
		rows, err = claimInTx(ctx, q, n, now, scan)
	} else {
		rows, err = claimInOne(ctx, q, n, now, scan)
	}
	if err != nil || q.Table.OrderingKey == "" || len(rows) == n {
		return rows, err
	}
	tails, err := claimTails(ctx, q, rows, n-len(rows), now, scan)
	if err != nil {
		// The heads are claimed; their tails wait for the next claim.
		return rows, nil
	}
	return mergeByKey(rows, tails), nil
}

func (q *Queue) keyList() string { return strings.Join(q.Table.Key, ", ") }

func (q *Queue) returned() string {
	cols := append(append([]string{}, q.Table.Key...), "tries")
	if q.Table.OrderingKey != "" {
		cols = append(cols, q.Table.OrderingKey)
	}
	return strings.Join(append(cols, q.Table.Columns...), ", ")
}

// claimable is the condition on a row o of being claimable at $3, with
// Where's arguments from $5.
func (q *Queue) claimable() string {
	t := q.Table
	c := `o.` + t.Status + ` = '` + Pending + `' AND o.next_attempt_ms <= $3 AND o.claimed_until_ms <= $3`
	if t.OrderingKey != "" {
		k := t.OrderingKey
		// The oldest pending row of its key: the set of those is
		// computed once per claim, not a lookup per pending row, which
		// made a claim cost a lookup for every row of every held-back key.
		c += ` AND (o.` + k + ` = '' OR o.` + t.Key[0] + ` IN (SELECT MIN(p.` + t.Key[0] + `) FROM ` + t.Name + ` p WHERE p.` +
			t.Status + ` = '` + Pending + `' AND p.` + k + ` <> '' GROUP BY p.` + k + `))`
	}
	w, _ := q.where(5)
	return c + w
}

func (q *Queue) selectKeys() string {
	keys := make([]string, len(q.Table.Key))
	for i, k := range q.Table.Key {
		keys[i] = "o." + k
	}
	return `SELECT ` + strings.Join(keys, ", ") + ` FROM ` + q.Table.Name + ` o WHERE ` + q.claimable() +
		` ORDER BY ` + prefixed(q.Table.Order, "o.") + ` LIMIT $4`
}

func claimInOne[T any](ctx context.Context, q *Queue, n int, now time.Time, scan Scan[T]) ([]Row[T], error) {
	lock := ""
	if q.Dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	query := `UPDATE ` + q.Table.Name + ` SET claimed_by = $1, claimed_until_ms = $2
		WHERE (` + q.keyList() + `) IN (` + q.selectKeys() + lock + `)
		RETURNING ` + q.returned()
	rs, err := q.Dialect.Query(ctx, q.DB, query, append([]any{q.Owner, now.Add(q.Lease).UnixMilli(), now.UnixMilli(), n}, q.WhereArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("claiming rows of %s: %w", q.Table.Name, err)
	}
	rows, err := readRows(q, rs, scan)
	if err != nil {
		return nil, err
	}
	sortRows(q, rows) // RETURNING gives no order
	return rows, nil
}

// claimInTx is the claim on MySQL, which has no UPDATE … RETURNING and
// no LIMIT in an IN subquery: the keys of claimable rows are read, those
// still claimable are locked (skipping rows others hold), marked and
// returned, all in one READ COMMITTED transaction.
func claimInTx[T any](ctx context.Context, q *Queue, n int, now time.Time, scan Scan[T]) (_ []Row[T], err error) {
	tx, err := q.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("claiming rows of %s: %w", q.Table.Name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	d := q.Dialect
	keys, err := readKeys(ctx, q, tx, q.selectKeys(), append([]any{q.Owner, now.Add(q.Lease).UnixMilli(), now.UnixMilli(), n}, q.WhereArgs...)...)
	if err != nil || len(keys) == 0 {
		_ = tx.Rollback() // also when nothing is due: the deferred one is for errors
		return nil, err
	}
	in, args := q.keyIn(keys, 2)
	w, wargs := q.where(2 + len(args))
	rs, err := d.Query(ctx, tx, `SELECT `+q.returned()+` FROM `+q.Table.Name+` WHERE `+in+
		` AND `+q.Table.Status+` = '`+Pending+`' AND next_attempt_ms <= $1 AND claimed_until_ms <= $1`+w+` FOR UPDATE SKIP LOCKED`,
		append(append([]any{now.UnixMilli()}, args...), wargs...)...)
	if err != nil {
		return nil, fmt.Errorf("locking rows of %s: %w", q.Table.Name, err)
	}
	rows, err := readRows(q, rs, scan)
	if err != nil || len(rows) == 0 {
		_ = tx.Rollback()
		return nil, err
	}
	if err := q.setClaimed(ctx, tx, Keys(rows), now); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claiming rows of %s: %w", q.Table.Name, err)
	}
	sortRows(q, rows)
	return rows, nil
}

func (q *Queue) setClaimed(ctx context.Context, e Execer, keys [][]any, now time.Time) error {
	in, args := q.keyIn(keys, 3)
	_, err := q.Dialect.Exec(ctx, e, `UPDATE `+q.Table.Name+` SET claimed_by = $1, claimed_until_ms = $2 WHERE `+in,
		append([]any{q.Owner, now.Add(q.Lease).UnixMilli()}, args...)...)
	if err != nil {
		return fmt.Errorf("claiming rows of %s: %w", q.Table.Name, err)
	}
	return nil
}

func readKeys(ctx context.Context, q *Queue, tx Querier, query string, args ...any) ([][]any, error) {
	rs, err := q.Dialect.Query(ctx, tx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("finding rows of %s to claim: %w", q.Table.Name, err)
	}
	defer rs.Close()
	var keys [][]any
	for rs.Next() {
		k := make([]any, len(q.Table.Key))
		ptrs := make([]any, len(k))
		for i := range k {
			ptrs[i] = &k[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("finding rows of %s to claim: %w", q.Table.Name, err)
		}
		keys = append(keys, k)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("finding rows of %s to claim: %w", q.Table.Name, err)
	}
	return keys, nil
}

func readRows[T any](q *Queue, rs *sql.Rows, scan Scan[T]) ([]Row[T], error) {
	defer rs.Close()
	var rows []Row[T]
	for rs.Next() {
		var r Row[T]
		r.Key = make([]any, len(q.Table.Key))
		head := make([]any, 0, len(r.Key)+2)
		for i := range r.Key {
			head = append(head, &r.Key[i])
		}
		head = append(head, &r.Tries)
		if q.Table.OrderingKey != "" {
			head = append(head, &r.OrderingKey)
		}
		v, err := scan(func(dest ...any) error { return rs.Scan(append(head, dest...)...) })
		if err != nil {
			return nil, fmt.Errorf("reading claimed rows of %s: %w", q.Table.Name, err)
		}
		r.Value = v
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading claimed rows of %s: %w", q.Table.Name, err)
	}
	for i := range rows {
		for j, k := range rows[i].Key {
			rows[i].Key[j] = normalize(k)
		}
	}
	return rows, nil
}

// normalize makes a key value read back comparable and usable as an
// argument: drivers return []byte for text on MySQL.
func normalize(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// keyIn is "(k1, k2) IN (($from, $from+1), …)" for keys, with its args.
func (q *Queue) keyIn(keys [][]any, from int) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, len(keys)*len(q.Table.Key))
	b.WriteString("(" + q.keyList() + ") IN (")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j, v := range k {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString("$" + strconv.Itoa(from+len(args)))
			args = append(args, v)
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
	return b.String(), args
}

// Keys returns the keys of rows.
func Keys[T any](rows []Row[T]) [][]any {
	keys := make([][]any, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
	}
	return keys
}

// Done marks rows processed, when they are still claimed by q.Owner; it
// returns how many were.
func (q *Queue) Done(ctx context.Context, keys [][]any) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	in, args := q.keyIn(keys, 4)
	set := ""
	if q.DoneSet != "" {
		set = ", " + q.DoneSet
	}
	res, err := q.exec(ctx, `UPDATE `+q.Table.Name+` SET `+q.Table.Status+` = $2, done_at_ms = $1, claimed_until_ms = 0`+set+
		` WHERE claimed_by = $3 AND `+in, append([]any{time.Now().UnixMilli(), q.Table.Done, q.Owner}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("marking %d rows of %s done: %w", len(keys), q.Table.Name, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Failed records a failed try, at, of a row claimed with tries earlier
// failures: it is pending again after the backoff, or dead after its
// last try. It reports whether the row is now dead, which it is not when
// the row is no longer claimed by q.Owner (then nothing changed). Rows of one batch
// are given one time, so that they are due again together.
func (q *Queue) Failed(ctx context.Context, key []any, tries int, at time.Time, cause error) (dead bool, err error) {
	now := at.UnixMilli()
	tries++
	status, next, doneAt := Pending, now+q.Backoff(tries).Milliseconds(), int64(0)
	if tries >= q.MaxTries {
		status, doneAt, dead = Dead, now, true
	}
	in, args := q.keyIn([][]any{key}, 7)
	res, err := q.exec(ctx, `UPDATE `+q.Table.Name+` SET `+q.Table.Status+` = $1, tries = $2, next_attempt_ms = $3, last_error = $4,
		claimed_until_ms = 0, done_at_ms = $5 WHERE claimed_by = $6 AND `+in,
		append([]any{status, tries, next, Truncate(cause.Error(), 1000), doneAt, q.Owner}, args...)...)
	if err != nil {
		return false, fmt.Errorf("recording a failed try of a row of %s: %w", q.Table.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return false, nil // no longer ours: its lease ended and another claimed it
	}
	return dead, nil
}

// Clean deletes done rows that were done before keepDone ago and, when
// keepDead is positive, dead rows dead before keepDead ago, up to 10,000
// of each, of the rows that meet Where; pending rows are never deleted. A negative keepDone keeps done
// rows. It returns how many rows it deleted.
func (q *Queue) Clean(ctx context.Context, keepDone, keepDead time.Duration) (int, error) {
	now := time.Now()
	total := 0
	del := func(status string, keep time.Duration) error {
		n, err := q.deleteOld(ctx, status, now.Add(-keep).UnixMilli())
		total += n
		return err
	}
	if keepDone >= 0 {
		if err := del(q.Table.Done, keepDone); err != nil {
			return total, err
		}
	}
	if keepDead > 0 {
		if err := del(Dead, keepDead); err != nil {
			return total, err
		}
	}
	return total, nil
}

func (q *Queue) deleteOld(ctx context.Context, status string, before int64) (int, error) {
	w, wargs := q.where(3)
	where := q.Table.Status + ` = $1 AND done_at_ms < $2` + w
	args := append([]any{status, before}, wargs...)
	var res sql.Result
	var err error
	if q.Dialect == MySQL {
		// MySQL has no LIMIT in an IN subquery, but DELETE takes one.
		res, err = q.exec(ctx, `DELETE FROM `+q.Table.Name+` WHERE `+where+` ORDER BY `+q.Table.Order+` LIMIT 10000`, args...)
	} else {
		res, err = q.exec(ctx, `DELETE FROM `+q.Table.Name+` WHERE (`+q.keyList()+`) IN (
			SELECT `+q.keyList()+` FROM `+q.Table.Name+` WHERE `+where+` ORDER BY `+q.Table.Order+` LIMIT 10000)`, args...)
	}
	if err != nil {
		return 0, fmt.Errorf("deleting %s rows of %s: %w", status, q.Table.Name, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// exec records an outcome even as ctx ends: an unrecorded outcome would
// be processed again.
func (q *Queue) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return q.Dialect.Exec(ctx, q.DB, query, args...)
}

// Truncate cuts s to at most n bytes, on a rune boundary.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func prefixed(order, p string) string {
	parts := strings.Split(order, ",")
	for i, s := range parts {
		parts[i] = p + strings.TrimSpace(s)
	}
	return strings.Join(parts, ", ")
}
