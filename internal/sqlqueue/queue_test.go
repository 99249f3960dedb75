package sqlqueue

import (
	"fmt"
	"testing"
)

func TestWhereIsNumberedAfterTheQuery(t *testing.T) {
	q := &Queue{Where: "k IN ($1, $2) AND v <> $10", WhereArgs: []any{"a", "b"}}
	if w, args := q.where(5); w != " AND (k IN ($5, $6) AND v <> $14)" || len(args) != 2 {
		t.Errorf("where(5) = %q, %v", w, args)
	}
	if w, args := (&Queue{}).where(5); w != "" || args != nil {
		t.Errorf("where without a condition = %q, %v", w, args)
	}
	if got := shift("price > 3 AND $1 = $12", 2); got != "price > 3 AND $3 = $14" {
		t.Errorf("shift = %q", got)
	}
}

func TestRebindForMySQL(t *testing.T) {
	q, args := MySQL.Rebind(`SELECT $2, $1, $2, '$x', $10`, []any{"a", "b", 3, 4, 5, 6, 7, 8, 9, "ten"})
	if q != `SELECT ?, ?, ?, '$x', ?` || fmt.Sprint(args) != "[b a b ten]" {
		t.Errorf("Rebind = %q %v", q, args)
	}
	if q, args := Postgres.Rebind(`SELECT $1`, []any{1}); q != `SELECT $1` || len(args) != 1 {
		t.Errorf("Rebind changed a PostgreSQL query: %q %v", q, args)
	}
}
