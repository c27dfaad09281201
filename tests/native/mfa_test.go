package native

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host/local"
)

// TestSweepForgetsOldChallenges: a sign-in challenge is kept a day after
// it expires (a late answer is told "expired", not "invalid"), then swept.
func TestSweepForgetsOldChallenges(t *testing.T) {
	clock := storagetest.NewClock(time.Now().UTC())
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	srv := httptest.NewServer(handlers.New(p.Platform, handlers.Config{Version: "test", TestRoutes: true}))
	t.Cleanup(srv.Close)
	c := &apitest.Client{Base: srv.URL}
	o := c.Signup(t, "Challenge Sweep Co")
	_, codes := o.EnrolTOTP(t)
	tok := c.PasswordStep(t, o.Email)
	count := func() int64 {
		rows, err := p.Platform.SQL.Query(context.Background(), `SELECT COUNT(*) FROM auth_challenges`)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		rows.Scan(0, &n)
		return n
	}
	clock.Advance(5*time.Minute + 24*time.Hour - time.Minute)
	if err := identity.Sweep(context.Background(), p.Platform); err != nil {
		t.Fatal(err)
	}
	expectCode(t, c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}), 401, "challenge_expired")
	clock.Advance(2 * time.Minute)
	if err := identity.Sweep(context.Background(), p.Platform); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d challenges after the sweep", n)
	}
	expectCode(t, c.SecondStep(t, tok, map[string]string{"recovery_code": codes[0]}), 401, "invalid_challenge")
}
