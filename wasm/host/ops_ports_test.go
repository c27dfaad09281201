package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/passwords"
	"pommy.ai/edge/wasm/abi"
	"pommy.ai/edge/wasm/host/limiter"
)

// TestPasswordAndLimitOps dispatches the password and limiter ops as the
// guest sends them and checks that answers and error codes cross intact.
func TestPasswordAndLimitOps(t *testing.T) {
	now := time.Now()
	pw, err := passwords.New(passwords.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := limiter.New(limiter.Options{Limits: map[string]storage.Limit{"login": {Limit: 2, Period: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h.opts.Platform = storage.Platform{Clock: storage.SystemClock{}, Passwords: pw, Limiter: lim}
	inv := h.newInvocation(context.Background(), "test", now.Add(time.Hour))
	defer inv.cleanup()
	inv.inst = &instance{}

	call := func(op abi.Op, req, resp abi.Message) error {
		t.Helper()
		in, err := abi.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return abi.DecodeReply(h.dispatch(context.Background(), inv, op, in), resp)
	}

	var hash abi.PasswordHash
	if err := call(abi.OpPasswordHash, &abi.PasswordHashReq{Password: []byte("s3cret")}, &hash); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := passwords.Decode(hash.Encoded); err != nil {
		t.Fatalf("hash %q: %v", hash.Encoded, err)
	}
	for _, c := range []struct {
		pw   string
		want bool
	}{{"s3cret", true}, {"s3creT", false}} {
		var v abi.PasswordVerifyResp
		if err := call(abi.OpPasswordVerify, &abi.PasswordVerifyReq{Encoded: hash.Encoded, Password: []byte(c.pw)}, &v); err != nil || v.Match != c.want {
			t.Errorf("verify %q = %v %v, want %v", c.pw, v.Match, err, c.want)
		}
	}
	var v abi.PasswordVerifyResp
	if err := call(abi.OpPasswordVerify, &abi.PasswordVerifyReq{Encoded: "$argon2id$v=19$m=999999999,t=2,p=1$AAAA$AAAA", Password: []byte("x")}, &v); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("verify of an absurd hash: %v, want ErrInvalid across the ABI", err)
	}

	for i, want := range []bool{true, true, false} {
		var d abi.LimitDecision
		if err := call(abi.OpLimitAllow, &abi.LimitAllowReq{Name: "login", Key: "k"}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Allowed != want || (!want && d.RetryAfter <= 0) {
			t.Errorf("event %d: %+v, want allowed=%v", i+1, d, want)
		}
	}
	var d abi.LimitDecision
	if err := call(abi.OpLimitAllow, &abi.LimitAllowReq{Name: "nope", Key: "k"}, &d); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("unknown limit: %v, want ErrInvalid", err)
	}

	// A host without the ports says so.
	h.opts.Platform = storage.Platform{Clock: storage.SystemClock{}}
	if err := call(abi.OpLimitAllow, &abi.LimitAllowReq{Name: "login", Key: "k"}, &d); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("no limiter: %v, want ErrUnavailable", err)
	}
	if err := call(abi.OpPasswordHash, &abi.PasswordHashReq{}, &hash); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("no passwords: %v, want ErrUnavailable", err)
	}
}
