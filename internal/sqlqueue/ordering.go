package sqlqueue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// claimTails claims, for each ordering key of the heads just claimed, the
// pending rows that follow its head while they are due, up to m rows in
// all. No other claim takes them: their head is pending.
func claimTails[T any](ctx context.Context, q *Queue, heads []Row[T], m int, now time.Time, scan Scan[T]) ([]Row[T], error) {
	if m <= 0 {
		return nil, nil
	}
	var okeys, hids []any
	for _, h := range heads {
		if h.OrderingKey != "" {
			okeys, hids = append(okeys, h.OrderingKey), append(hids, h.Key[0])
		}
	}
	if len(okeys) == 0 {
		return nil, nil
	}
	t := q.Table
	id := t.Key[0]
	kin, kargs := inList(t.OrderingKey, okeys, 2)
	hin, hargs := inList(id, hids, 2+len(kargs))
	rs, err := q.Dialect.Query(ctx, q.DB, `SELECT `+id+`, `+t.OrderingKey+`, next_attempt_ms FROM `+t.Name+
		` WHERE `+kin+` AND NOT `+hin+` AND `+t.Status+` = '`+Pending+`' ORDER BY `+id+` LIMIT $1`,
		append(append([]any{m}, kargs...), hargs...)...)
	if err != nil {
		return nil, fmt.Errorf("finding the rows after claimed ones in %s: %w", t.Name, err)
	}
	blocked := map[string]bool{}
	var ids []any
	for rs.Next() {
		var rid int64
		var okey string
		var next int64
		if err := rs.Scan(&rid, &okey, &next); err != nil {
			rs.Close()
			return nil, fmt.Errorf("finding the rows after claimed ones in %s: %w", t.Name, err)
		}
		if blocked[okey] || next > now.UnixMilli() {
			blocked[okey] = true // nothing after a row that waits
			continue
		}
		ids = append(ids, rid)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("finding the rows after claimed ones in %s: %w", t.Name, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	in, args := inList(id, ids, 3)
	set := `UPDATE ` + t.Name + ` SET claimed_by = $1, claimed_until_ms = $2 WHERE ` + in + ` AND ` + t.Status + ` = '` + Pending + `'`
	lease := now.Add(q.Lease).UnixMilli()
	if q.Dialect != MySQL {
		rs, err := q.Dialect.Query(ctx, q.DB, set+` RETURNING `+q.returned(), append([]any{q.Owner, lease}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("claiming the rows after claimed ones in %s: %w", t.Name, err)
		}
		return readRows(q, rs, scan)
	}
	if _, err := q.Dialect.Exec(ctx, q.DB, set, append([]any{q.Owner, lease}, args...)...); err != nil {
		return nil, fmt.Errorf("claiming the rows after claimed ones in %s: %w", t.Name, err)
	}
	in, args = inList(id, ids, 2)
	rs, err = q.Dialect.Query(ctx, q.DB, `SELECT `+q.returned()+` FROM `+t.Name+` WHERE claimed_by = $1 AND `+in,
		append([]any{q.Owner}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("reading the rows after claimed ones in %s: %w", t.Name, err)
	}
	return readRows(q, rs, scan)
}

// InList is "(col) IN (($from), …)" for vals, with its args.
func InList(col string, vals []any, from int) (string, []any) { return inList(col, vals, from) }

// inList is "(col) IN (($from), …)" for vals, with its args.
func inList(col string, vals []any, from int) (string, []any) {
	keys := make([][]any, len(vals))
	for i, v := range vals {
		keys[i] = []any{v}
	}
	q := &Queue{Table: Table{Key: []string{col}}}
	return q.keyIn(keys, from)
}

// mergeByKey is heads and tails in one slice, in key order.
func mergeByKey[T any](heads, tails []Row[T]) []Row[T] {
	rows := append(heads, tails...)
	sortByID(rows)
	return rows
}

// sortRows puts rows of a table with one integer key in key order.
func sortRows[T any](q *Queue, rows []Row[T]) {
	if len(q.Table.Key) == 1 {
		sortByID(rows)
	}
}

func sortByID[T any](rows []Row[T]) {
	slices.SortFunc(rows, func(a, b Row[T]) int {
		x, _ := a.Key[0].(int64)
		y, _ := b.Key[0].(int64)
		return cmp.Compare(x, y)
	})
}
