package handlers

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"pommy.ai/edge/storage"
)

// TestTestRoutesOnlyWhereLinked: Config.TestRoutes in a build that has no
// test routes (nothing imported handlers/testroutes) is refused, loudly,
// rather than ignored; once registered, New mounts them.
func TestTestRoutesOnlyWhereLinked(t *testing.T) {
	if mountTestRoutes != nil {
		t.Fatal("package handlers' own tests must not link the test routes")
	}
	if err := (Config{}).Check(); err != nil {
		t.Errorf("Check without TestRoutes: %v", err)
	}
	if err := (Config{TestRoutes: true}).Check(); !errors.Is(err, ErrNoTestRoutes) {
		t.Errorf("Check with TestRoutes and no test routes linked: %v, want ErrNoTestRoutes", err)
	}
	// A webhook test allow-list is as much a test setting: refused in a
	// build without test routes, and without TestRoutes in one with them.
	if err := (Config{TestRoutes: true, WebhookTestAllow: []string{"127.0.0.1:1"}}).Check(); err == nil {
		t.Error("Check with a webhook test allow-list and no test routes linked: nil, want an error")
	}
	if err := (Config{WebhookTestAllow: []string{"127.0.0.1:1"}}).Check(); !errors.Is(err, ErrTestAllowWithoutTestRoutes) {
		t.Errorf("Check with a webhook test allow-list, no TestRoutes: %v, want ErrTestAllowWithoutTestRoutes", err)
	}
	func() {
		defer func() {
			if v := recover(); v != ErrNoTestRoutes {
				t.Errorf("New with TestRoutes and no test routes linked: recovered %v, want a panic with ErrNoTestRoutes", v)
			}
		}()
		New(storage.Platform{}, Config{TestRoutes: true})
	}()

	t.Cleanup(func() { mountTestRoutes = nil })
	RegisterTestRoutes(func(mux *http.ServeMux, env TestEnv) {
		mux.HandleFunc("GET /__test/probe", func(w http.ResponseWriter, r *http.Request) {
			env.WriteError(w, r, env.Errorf(http.StatusTeapot, "probe", "mounted"))
		})
	})
	if err := (Config{WebhookTestAllow: []string{"127.0.0.1:1"}}).Check(); !errors.Is(err, ErrTestAllowWithoutTestRoutes) {
		t.Errorf("Check with test routes linked, a webhook test allow-list and TestRoutes off: %v, want ErrTestAllowWithoutTestRoutes", err)
	}
	if err := (Config{TestRoutes: true, WebhookTestAllow: []string{"127.0.0.1:1"}}).Check(); err != nil {
		t.Errorf("Check in a test build with TestRoutes and a webhook test allow-list: %v", err)
	}
	for _, tc := range []struct {
		on   bool
		want int
	}{{false, http.StatusNotFound}, {true, http.StatusTeapot}} {
		rec := httptest.NewRecorder()
		New(storage.Platform{}, Config{TestRoutes: tc.on}).ServeHTTP(rec, httptest.NewRequest("GET", "/__test/probe", nil))
		if rec.Code != tc.want {
			t.Errorf("TestRoutes=%v: GET /__test/probe = %d %s, want %d", tc.on, rec.Code, rec.Body, tc.want)
		}
	}
}
