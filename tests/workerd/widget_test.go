//go:build !windows

package workerd

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/streamclient"
	"pommy.ai/edge/tests/widgettest"
	"pommy.ai/edge/tests/workerd/wrangler"
)

// TestWidget is the smoke suite of the embedded widget in the real
// js/wasm worker under workerd: the loader with its content type, the
// token route's CORS for an allowed origin and its 403 (and the tenant's
// notice) for another, the frame page's frame-ancestors, a visitor's chat
// whose person's reply reaches the visitor's SSE stream through the
// Durable Object without the private note written before it, a held
// visitor stream ended once the site's origin is removed, and the
// identity scenario (jose-signed tokens and forgeries) at the edge. No
// timing is asserted; every wait is bounded generously for a loaded
// machine.
func TestWidget(t *testing.T) {
	root, build := testWorker(t)
	w := start(t, wrangler.Options{Root: root, Name: "widget", SkipBuild: true, BuildDir: build,
		Vars: []string{"POMMY_TEST_ROUTES:1"}})
	hc := &http.Client{Timeout: 2 * time.Minute}
	c := &apitest.Client{Base: w.URL, HTTP: hc}
	const shop = "https://shop.example"
	site := widgettest.NewSite(t, c, "Widget at the edge", shop)

	t.Run("loader", func(t *testing.T) {
		plain := c.Do(t, "GET", "/widget.js", nil, "Accept-Encoding", "identity").Expect(t, 200)
		if ct := plain.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
			t.Errorf("/widget.js Content-Type %q", ct)
		}
		if cc := plain.Header.Get("Cache-Control"); cc != "public, max-age=300" {
			t.Errorf("/widget.js Cache-Control %q", cc)
		}
		if len(plain.Body) == 0 {
			t.Fatal("/widget.js is empty")
		}
		// Compressed or not, it is the same script.
		gz := c.Do(t, "GET", "/widget.js", nil, "Accept-Encoding", "gzip").Expect(t, 200)
		body := gz.Body
		if gz.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(gz.Body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(body, plain.Body) {
			t.Errorf("/widget.js with gzip (%d bytes, %q) is not the script (%d bytes)", len(body), gz.Header.Get("Content-Encoding"), len(plain.Body))
		}
	})

	t.Run("token-cors", func(t *testing.T) {
		ok := site.TokenFrom(t, shop).Expect(t, 200)
		h := ok.Header
		if h.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(h.Get("Vary"), "Origin") || h.Get("Cache-Control") != "no-store" {
			t.Errorf("token for %s: ACAO %q, Vary %q, Cache-Control %q", shop, h.Get("Access-Control-Allow-Origin"), h.Get("Vary"), h.Get("Cache-Control"))
		}
		// The loader opens the frame where the token says: this very
		// platform, reached as the loader was (wrangler dev is plain http).
		var tok struct {
			FrameURL string `json:"frame_url"`
		}
		json.Unmarshal(ok.Body, &tok)
		if !strings.HasPrefix(tok.FrameURL, w.URL+"/widget/frame/"+site.Tenant+"?") {
			t.Errorf("frame_url %q is not on the platform's origin %s", tok.FrameURL, w.URL)
		}
		const evil = "https://evil.example"
		no := site.TokenFrom(t, evil)
		if no.Status != 403 || no.ErrorCode(t) != "origin_not_allowed" || no.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("token for %s: %d %s ACAO %q, want 403 origin_not_allowed and no ACAO", evil, no.Status, no.Body, no.Header.Get("Access-Control-Allow-Origin"))
		}
		if strings.Contains(string(no.Body), "wt_") {
			t.Errorf("the refusal carries a token: %s", no.Body)
		}
		// The tenant sees the refused origin.
		notices := site.Owner.Do(t, "GET", "/v1/audit/notices", nil).Expect(t, 200)
		var n struct {
			Notices []struct{ Kind, Message string }
		}
		json.Unmarshal(notices.Body, &n)
		found := false
		for _, x := range n.Notices {
			found = found || (x.Kind == "widget_origin_refused" && strings.Contains(x.Message, evil))
		}
		if !found {
			t.Errorf("no widget_origin_refused notice naming %s: %s", evil, notices.Body)
		}
	})

	t.Run("frame-csp", func(t *testing.T) {
		r := c.Do(t, "GET", "/widget/frame/"+site.Tenant, nil).Expect(t, 200)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors "+shop) || strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("frame CSP %q, want frame-ancestors %s", csp, shop)
		}
		if xfo := r.Header.Get("X-Frame-Options"); xfo != "" {
			t.Errorf("frame X-Frame-Options %q: it would refuse the allowed embedder", xfo)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("frame Content-Type %q", r.Header.Get("Content-Type"))
		}
		u := c.Do(t, "GET", "/widget/frame/t_nosuchtenantatall", nil)
		if u.Status != 404 || !strings.Contains(u.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("frame of an unknown tenant: %d CSP %q, want 404 with frame-ancestors 'none'", u.Status, u.Header.Get("Content-Security-Policy"))
		}
	})

	t.Run("chat", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		v := site.Anonymous(t)
		conv := site.StartID(t, v, "Hello from the edge widget")
		s, err := streamclient.Open(ctx, &http.Client{}, w.URL+"/v1/widget/conversations/"+conv+"/events/stream", "", site.As(v)...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		const note, reply = "private: this visitor is a VIP, do not tell them", "Hi! A person here, at the edge."
		site.Reply(t, conv, note, true).Expect(t, 201)
		site.Reply(t, conv, reply, false).Expect(t, 201)
		// Everything up to the reply arrives in order (the stream reads the
		// log from the start), and the note never does.
		var seen []string
		var last int64
		for {
			e, err := s.NextData()
			if err != nil {
				t.Fatalf("visitor stream after %v: %v", seen, err)
			}
			seen = append(seen, e.Type)
			if strings.Contains(e.Data, note) || strings.Contains(e.Data, "VIP") {
				t.Fatalf("the visitor's stream carried the private note: %s %s", e.Type, e.Data)
			}
			var ev struct{ Seq int64 }
			if json.Unmarshal([]byte(e.Data), &ev) == nil && ev.Seq <= last {
				t.Fatalf("event seq %d after %d: %s", ev.Seq, last, e.Data)
			}
			last = max(last, ev.Seq)
			if e.Type == "message.created" && strings.Contains(e.Data, reply) {
				var m struct {
					Data struct {
						AuthorType string `json:"author_type"`
						Text       string
					}
				}
				if json.Unmarshal([]byte(e.Data), &m) != nil || m.Data.AuthorType != "person" || m.Data.Text != reply {
					t.Errorf("the reply as the visitor sees it: %s", e.Data)
				}
				break
			}
		}
		// Live in the other direction too: the visitor's next message comes
		// back on the stream, after the reply.
		site.Send(t, v, conv, "Thanks, edge!").Expect(t, 201)
		for {
			e, err := s.NextData()
			if err != nil {
				t.Fatalf("visitor stream waiting for its own message: %v", err)
			}
			if strings.Contains(e.Data, note) {
				t.Fatalf("the visitor's stream carried the private note: %s", e.Data)
			}
			if e.Type == "message.created" && strings.Contains(e.Data, "Thanks, edge!") {
				break
			}
		}
		// The visitor's message list has no note either; the team's has.
		msgs := c.Do(t, "GET", "/v1/widget/conversations/"+conv+"/messages", nil, site.As(v)...).Expect(t, 200)
		if strings.Contains(string(msgs.Body), "VIP") || !strings.Contains(string(msgs.Body), reply) {
			t.Errorf("the visitor's messages: %s", msgs.Body)
		}
		team := c.Do(t, "GET", "/v1/conversations/"+conv+"/messages", nil, site.Bearer()...).Expect(t, 200)
		if !strings.Contains(string(team.Body), "VIP") || !strings.Contains(string(team.Body), "Hello from the edge widget") {
			t.Errorf("the team's messages lack the note or the visitor's first message: %s", team.Body)
		}
	})

	// The Durable Object's re-poll runs the application's authorization
	// again: a visitor stream held when the origin is removed ends at its
	// next wake-up instead of delivering the next reply.
	t.Run("origin-removed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		v := site.Anonymous(t)
		conv := site.StartID(t, v, "Hello before the origin goes")
		s, err := streamclient.Open(ctx, &http.Client{}, w.URL+"/v1/widget/conversations/"+conv+"/events/stream", "", site.As(v)...)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for {
			e, err := s.NextData()
			if err != nil {
				t.Fatalf("visitor stream: %v", err)
			}
			if e.Type == "message.created" {
				break
			}
		}
		site.Settings(t, map[string]any{"allowed_origins": []string{}}).Expect(t, 200)
		const after = "a reply after the origin was removed"
		site.Reply(t, conv, after, false).Expect(t, 201)
		for {
			e, err := s.NextData()
			if err != nil {
				t.Fatalf("visitor stream after the origin was removed: %v; want event error origin_not_allowed", err)
			}
			if strings.Contains(e.Data, after) {
				t.Fatalf("a stream of a removed origin delivered the reply: %s", e.Data)
			}
			if e.Type == "error" {
				if !strings.Contains(e.Data, "origin_not_allowed") {
					t.Errorf("the stream ended with %s, want origin_not_allowed", e.Data)
				}
				break
			}
		}
		if r := c.Do(t, "GET", "/widget/frame/"+site.Tenant, nil); r.Status != 404 || !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("frame page without allowed origins: %d, CSP %q", r.Status, r.Header.Get("Content-Security-Policy"))
		}
	})

	t.Run("identity", func(t *testing.T) { widgettest.Identity(t, c) })
}
