package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"pommy.ai/edge/wasm/host"
)

// Benchmarks of the local home. They measure; nothing asserts a speed.
//
//	go test ./tests/e2e -run '^$' -bench . -benchtime 2s

// BenchmarkStartup reports the guest's size and what starting a host costs:
// compiling the module without and with the on-disk cache, and one
// instantiation (the Go runtime's _initialize included).
func BenchmarkStartup(b *testing.B) {
	b.ReportMetric(float64(len(guest))/(1<<20), "MiB-module")
	var uncached, cached, inst time.Duration
	for range b.N {
		dir := b.TempDir()
		for i := range 2 {
			h, err := host.New(context.Background(), host.Options{Module: guest, CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			s := h.Stats()
			if i == 0 {
				uncached += s.Compile
			} else {
				cached += s.Compile
			}
			inst += s.LastInstantiate
			h.Close(context.Background())
		}
	}
	b.ReportMetric(float64(uncached.Milliseconds())/float64(b.N), "ms-compile")
	b.ReportMetric(float64(cached.Milliseconds())/float64(b.N), "ms-compile-cached")
	b.ReportMetric(float64(inst.Microseconds())/float64(2*b.N)/1000, "ms-instantiate")
}

// BenchmarkHealthz is one request at a time over a kept-alive connection:
// the latency of a warm instance (pool) or a fresh one (per request).
func BenchmarkHealthz(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			h := startHome(b, homeOptions{perRequest: m.perRequest})
			get(b, h.url+"/healthz") // warm up
			b.ResetTimer()
			for range b.N {
				get(b, h.url+"/healthz")
			}
		})
	}
}

// BenchmarkHealthzParallel is requests from many clients at once.
func BenchmarkHealthzParallel(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			h := startHome(b, homeOptions{perRequest: m.perRequest})
			get(b, h.url+"/healthz")
			b.ResetTimer()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b, h.url+"/healthz")
				}
			})
		})
	}
}

func get(b testing.TB, url string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}
