package webhook

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkRouteSign measures the signing of one delivery as the bridge
// does it, on a compiled route: one HMAC-SHA256 key, and two (a rotation).
func BenchmarkRouteSign(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 256)
	for _, c := range []struct {
		name    string
		secrets Secrets
	}{
		{"v1", Secrets{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{"v1+v1", Secrets{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_YW5vdGhlciBzZWNyZXQgb2YgMzIgYnl0ZXMuLi4uLi4="}},
		{"v1a", Secrets{"whsk_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}},
		{"v1+v1a", Secrets{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsk_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, err := compileRoute(Subscription{ID: "s", Topic: "*", URL: "http://x", Secrets: c.secrets})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = r.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
				}
			})
		})
	}
}

// TestRouteSignConcurrently signs on one route from many goroutines at
// once, across garbage collections (which empty the pool, not the idle
// slot): every signature must equal the one Sign works out afresh, so no
// HMAC state is ever shared by two deliveries or reused unreset.
func TestRouteSignConcurrently(t *testing.T) {
	secrets := Secrets{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_YW5vdGhlciBzZWNyZXQgb2YgMzIgYnl0ZXMuLi4uLi4="}
	r, err := compileRoute(Subscription{ID: "s", Topic: "*", URL: "http://x", Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if i%50 == 0 {
					runtime.GC()
				}
				id := fmt.Sprintf("msg_%d_%d", g, i)
				body := bytes.Repeat([]byte{byte('a' + g)}, 1+i)
				got := r.sign(id, int64(1614265330+i), body)
				want, err := Sign(secrets, id, int64(1614265330+i), body)
				if err != nil {
					t.Error(err)
					return
				}
				if got != want {
					t.Errorf("goroutine %d, delivery %d: signed %q, want %q", g, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
