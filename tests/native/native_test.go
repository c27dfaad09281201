// Package native runs the acceptance suite against the handlers compiled
// natively (no Wasm) on the local platform's adapters: the baseline the
// Wasm homes are compared with, and the quickest place to debug a scenario.
package native

import (
	"context"
	"net/http/httptest"
	"testing"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host/local"
)

func TestNativeHandlers(t *testing.T) {
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Home = "native"
	srv := httptest.NewServer(handlers.New(p.Platform, handlers.Config{Version: "test"}))
	defer srv.Close()
	apitest.Run(t, &apitest.Client{Base: srv.URL}, "native")
}
