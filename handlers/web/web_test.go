package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/audit"
)

func TestIDs(t *testing.T) {
	id := NewID("n")
	if !ValidID("n", id) {
		t.Fatalf("fresh id %q invalid", id)
	}
	for _, bad := range []string{"", "n_", id + "a", "t" + id[1:], strings.ToUpper(id), "n_" + strings.Repeat("1", 26), "n_../../etc/passwd"} {
		if ValidID("n", bad) {
			t.Errorf("ValidID accepted %q", bad)
		}
	}
}

func TestWriteJSONDoesNotEscapeHTML(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, 200, map[string]string{"title": "<b>Fish & Chips</b>"})
	if got := w.Body.String(); got != `{"title":"<b>Fish & Chips</b>"}`+"\n" {
		t.Errorf("body %q", got)
	}
}

// TestDecodeJSONLimit crosses the body limit by one byte.
func TestDecodeJSONLimit(t *testing.T) {
	var v struct{ A string }
	body := `{"A":"` + strings.Repeat("x", 10) + `"}`
	limit := int64(len(body))
	if err := DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), limit, &v); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	err := DecodeJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(body)), limit-1, &v)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("one byte over: %v", err)
	}
	req := httptest.NewRequest("POST", "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	if err := DecodeJSON(httptest.NewRecorder(), req, limit, &v); !errors.As(err, &e) || e.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %v", err)
	}
}

func TestWriteErrorHidesFaults(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/", nil), errors.New("disk /secret/path failed"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") || !strings.Contains(w.Body.String(), `"code":"internal"`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	e := Errorf(http.StatusTooManyRequests, "rate_limited", "slow down")
	e.RetryAfter = 7
	WriteError(w, httptest.NewRequest("GET", "/", nil), e)
	if w.Code != 429 || w.Header().Get("Retry-After") != "7" || string(ErrorBody("rate_limited", "slow down")) != w.Body.String() {
		t.Errorf("%d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestClient(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	if ClientIP(r) != "192.0.2.1" || ClientCountry(r) != "" || RequestID(r) != "" {
		t.Errorf("outside the middleware: %q %q %q", ClientIP(r), ClientCountry(r), RequestID(r))
	}
	r = WithClient(r, Client{IP: "198.51.100.7", Country: "DE", RequestID: "req12345"})
	if ClientIP(r) != "198.51.100.7" || ClientCountry(r) != "DE" || RequestID(r) != "req12345" {
		t.Errorf("from the middleware: %q %q %q", ClientIP(r), ClientCountry(r), RequestID(r))
	}
	r.Header.Set("User-Agent", strings.Repeat("u", 300))
	s := &Scope{Tenant: "t_1", UserID: "u_1"}
	e := s.Event(r)
	if e.TenantID != "t_1" || e.ActorType != audit.ActorUser || e.ActorID != "u_1" || e.IP != "198.51.100.7" || len(e.UserAgent) != 256 || e.RequestID != "req12345" {
		t.Errorf("event %+v", e)
	}
	s.KeyID = "k_1"
	if typ, id := s.Actor(); typ != audit.ActorAPIKey || id != "k_1" {
		t.Errorf("a key's actor: %s %s", typ, id)
	}
}
