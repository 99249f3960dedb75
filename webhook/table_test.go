package webhook

import (
	"fmt"
	"testing"
)

// Changing one subscription among thousands compiles that one: the others
// keep their compiled routes.
func TestSetSubscriptionsRecompilesOnlyWhatChanged(t *testing.T) {
	subs := make([]Subscription, 2000)
	for i := range subs {
		subs[i] = Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: "http://127.0.0.1:1/", Filter: fmt.Sprintf("data.n == %d", i),
			Headers: map[string]string{"X-N": fmt.Sprint(i)}}
	}
	first, err := compileTable(subs, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := append([]Subscription(nil), subs...)
	changed[7].Filter = "data.n == -1"
	changed[8].Headers = map[string]string{"X-N": "other"}
	second, err := compileTable(changed, first)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range changed {
		same := first.byID[s.ID] == second.byID[s.ID]
		if want := i != 7 && i != 8; same != want {
			t.Errorf("subscription %s: route reused %v, want %v", s.ID, same, want)
		}
	}
	if second.byID["s7"].sub.Filter != "data.n == -1" {
		t.Errorf("the changed subscription kept its old filter")
	}
}

func BenchmarkSetSubscriptionsOneChanged(b *testing.B) {
	subs := make([]Subscription, 10000)
	for i := range subs {
		subs[i] = Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: "http://127.0.0.1:1/", Filter: fmt.Sprintf("data.n == %d", i)}
	}
	prev, err := compileTable(subs, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		subs[0].Filter = fmt.Sprintf("data.n == %d", -i)
		if prev, err = compileTable(subs, prev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetSubscriptionsAllCompiled(b *testing.B) {
	subs := make([]Subscription, 10000)
	for i := range subs {
		subs[i] = Subscription{ID: fmt.Sprintf("s%d", i), Topic: "t", URL: "http://127.0.0.1:1/", Filter: fmt.Sprintf("data.n == %d", i)}
	}
	for range b.N {
		if _, err := compileTable(subs, nil); err != nil {
			b.Fatal(err)
		}
	}
}
