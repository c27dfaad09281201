package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

type fakeMailer struct {
	err  error
	hang bool
	sent []storage.Mail
}

func (f *fakeMailer) Send(ctx context.Context, m storage.Mail) (string, error) {
	if f.hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if f.err != nil {
		return "", f.err
	}
	f.sent = append(f.sent, m)
	return "<" + m.ID + "@example.com>", nil
}

// TestMailSendOp dispatches mail.send as the guest sends it: the message
// crosses intact, the adapter's error classes arrive as the same storage
// sentinels, a bad message never reaches the adapter, an unclassified
// error or a hung send is unavailable (retry), and no mail port is
// unavailable too.
func TestMailSendOp(t *testing.T) {
	send := func(t *testing.T, mailer storage.Mailer, timeout time.Duration, req *abi.MailSendReq) (abi.MailSendResp, error) {
		t.Helper()
		h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		h.opts.Platform = storage.Platform{Clock: storage.SystemClock{}}
		if mailer != nil {
			h.opts.Platform.Mail = mailer
		}
		h.opts.MailTimeout = timeout
		inv := h.newInvocation(context.Background(), "test", time.Now().Add(time.Hour))
		defer inv.cleanup()
		inv.inst = &instance{}
		in, err := abi.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var resp abi.MailSendResp
		err = abi.DecodeReply(h.dispatch(context.Background(), inv, abi.OpMailSend, in), &resp)
		return resp, err
	}
	good := &abi.MailSendReq{ID: "ml_1", To: "ayse@example.com", Subject: "Şifre", Text: "metin", HTML: "<p>metin</p>"}

	f := &fakeMailer{}
	resp, err := send(t, f, 0, good)
	if err != nil || resp.ProviderID != "<ml_1@example.com>" {
		t.Fatalf("send: %+v %v", resp, err)
	}
	if len(f.sent) != 1 || f.sent[0] != (storage.Mail{ID: "ml_1", To: "ayse@example.com", Subject: "Şifre", Text: "metin", HTML: "<p>metin</p>"}) {
		t.Fatalf("the adapter got %+v", f.sent)
	}

	bad := *good
	bad.To = "a@example.com\r\nBcc: b@example.com"
	f = &fakeMailer{}
	if _, err := send(t, f, 0, &bad); !errors.Is(err, storage.ErrInvalid) || len(f.sent) != 0 {
		t.Errorf("header injection: %v, %d sent", err, len(f.sent))
	}

	for _, c := range []struct {
		name string
		m    *fakeMailer
		want error
	}{
		{"invalid", &fakeMailer{err: fmt.Errorf("%w: 550 no such user", storage.ErrInvalid)}, storage.ErrInvalid},
		{"unavailable", &fakeMailer{err: fmt.Errorf("%w: 421 busy", storage.ErrUnavailable)}, storage.ErrUnavailable},
		{"unclassified", &fakeMailer{err: errors.New("something odd")}, storage.ErrUnavailable},
		{"hung", &fakeMailer{hang: true}, storage.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := send(t, c.m, 50*time.Millisecond, good)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == storage.ErrUnavailable && errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("%v is both", err)
			}
		})
	}
	if _, err := send(t, nil, 0, good); !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "mail") {
		t.Errorf("no mail port: %v", err)
	}
}
