// Package localtest opens the local home's platform (real SQLite with every
// migration, a key file, blobs on disk) in a test's temporary folder, for
// the application's package tests that need real storage rather than a
// fake. It is a separate package so that the host itself never links
// package testing.
package localtest

import (
	"context"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/host/local"
)

// Open returns a fresh platform on clk, closed when the test ends.
// Synchronous NORMAL: a test's data need not survive a power cut.
func Open(t testing.TB, clk storage.Clock) storage.Platform {
	t.Helper()
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: clk, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.Platform
}
