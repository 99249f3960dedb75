package webhook

import (
	"bytes"
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
