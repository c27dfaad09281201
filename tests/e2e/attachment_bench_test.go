package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAttachment PUTs then GETs a 16 MiB sealed attachment through the
// host and the real guest (pooled), reporting MB/s each way. It measures;
// nothing asserts a speed.
//
//	go test ./tests/e2e -run '^$' -bench Attachment -benchtime 5x
func BenchmarkAttachment(b *testing.B) {
	h := startHome(b, homeOptions{})
	ch := newChat(b, h, "Bench")
	auth := []string{"Authorization", "Bearer " + ch.key}
	// Attachments are written once: a message for each upload, sent
	// before the clock starts.
	msgs := make([]string, b.N)
	for i := range msgs {
		msgs[i] = ch.send(b, h, fmt.Sprintf("file %d", i))
	}
	data := make([]byte, 16<<20)
	rand.Read(data)
	var put, get, putCPU, getCPU time.Duration
	bestPut, bestGet := time.Hour, time.Hour
	b.ResetTimer()
	for _, mid := range msgs {
		path := attachmentPath(ch.conv, mid)
		start, c0 := time.Now(), cpuTime()
		if r := h.do(b, "PUT", path, bytes.NewReader(data), auth...); r.status != 201 {
			b.Fatalf("put: %v", r)
		}
		put += time.Since(start)
		bestPut = min(bestPut, time.Since(start))
		putCPU += cpuTime() - c0
		start, c0 = time.Now(), cpuTime()
		r := h.do(b, "GET", path, nil, auth...)
		get += time.Since(start)
		bestGet = min(bestGet, time.Since(start))
		getCPU += cpuTime() - c0
		if r.status != 200 || !bytes.Equal(r.body, data) {
			b.Fatalf("get: %d, %d bytes", r.status, len(r.body))
		}
	}
	mb := float64(len(data)) * float64(b.N) / 1e6
	b.ReportMetric(mb/put.Seconds(), "MB/s-put")
	b.ReportMetric(mb/get.Seconds(), "MB/s-get")
	b.ReportMetric(float64(putCPU.Milliseconds())/float64(b.N), "cpu-ms/put")
	b.ReportMetric(float64(getCPU.Milliseconds())/float64(b.N), "cpu-ms/get")
	one := float64(len(data)) / 1e6
	b.ReportMetric(one/bestPut.Seconds(), "MB/s-put-best")
	b.ReportMetric(one/bestGet.Seconds(), "MB/s-get-best")
}

// cpuTime is the process's user+system CPU time: less disturbed than wall
// time by other work on the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
