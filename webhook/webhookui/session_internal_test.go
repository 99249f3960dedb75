package webhookui

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestSessionsExpireAndDependOnTheToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	s := newSessions("tok", secret, time.Hour, rate.NewLimiter(1, 1))
	now := time.Now()
	v := s.create(now)
	if _, ok := s.check(v, now.Add(59*time.Minute)); !ok {
		t.Fatal("a session refused within its hour")
	}
	if _, ok := s.check(v, now.Add(time.Hour+time.Second)); ok {
		t.Error("an expired session accepted")
	}
	// A changed token (a restart with another one) invalidates every
	// session, even one whose id were somehow live.
	changed := newSessions("tok2", secret, time.Hour, rate.NewLimiter(1, 1))
	changed.live = s.live
	if _, ok := changed.check(v, now); ok {
		t.Error("a session made under another admin token accepted")
	}
	if s.csrf("a") == s.csrf("b") || s.csrf("a") == changed.csrf("a") {
		t.Error("CSRF tokens are not per session and per key")
	}
}

func TestSessionsAreBounded(t *testing.T) {
	s := newSessions("tok", []byte("k"), time.Hour, rate.NewLimiter(1, 1))
	now := time.Now()
	first := s.create(now)
	for i := range maxSessions {
		s.create(now.Add(time.Duration(i+1) * time.Millisecond))
	}
	if len(s.live) != maxSessions {
		t.Errorf("%d sessions kept, want %d", len(s.live), maxSessions)
	}
	if _, ok := s.check(first, now); ok {
		t.Error("the oldest session survived the bound")
	}
}
