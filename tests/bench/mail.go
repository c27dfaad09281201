package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// mailBytes measures what the edge mail adapter (worker/sesmail: Amazon
// SES v2 with its own SigV4 signer) adds to the worker: the
// worker built as make builds it, against the same build with -tags
// pommy_nomail, which leaves the adapter out (worker/mail_none.go).
func (x *b) mailBytes() error {
	progress("measuring the edge mail adapter's bytes (two worker builds)...")
	build := func(out string, tags string) (int64, int64, error) {
		cmd := exec.Command("go", "build", "-trimpath", "-tags="+tags, "-ldflags=-s -w -X main.version=bench", "-o", out, "./worker")
		cmd.Dir, cmd.Stdout, cmd.Stderr = x.root, os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if err := cmd.Run(); err != nil {
			return 0, 0, fmt.Errorf("building the worker (tags %q): %w", tags, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return 0, 0, err
		}
		return int64(len(b)), gzipSize(b), nil
	}
	with, withGz, err := build(filepath.Join(x.tmp, "worker-mail.wasm"), "")
	if err != nil {
		return err
	}
	without, withoutGz, err := build(filepath.Join(x.tmp, "worker-nomail.wasm"), "pommy_nomail")
	if err != nil {
		return err
	}
	x.rep.section("The edge mail adapter's bytes",
		"The worker (`-s -w -trimpath`, gzip -9) with its mail adapter (`worker/sesmail`: Amazon SES v2's SendEmail written by hand, "+
			"signed by its own SigV4) and without it (`-tags pommy_nomail`, a measurement build). "+
			"The SDK's SES client instead measured +1,691,182 B gzip when the adapter was chosen (docs/decisions.md).")
	x.rep.table([]string{"worker", "raw", "gzip -9"}, [][]string{
		{"with the mail adapter", thousands(with) + " B", thousands(withGz) + " B"},
		{"without (`-tags pommy_nomail`)", thousands(without) + " B", thousands(withoutGz) + " B"},
		{"the adapter adds", thousands(with-without) + " B", thousands(withGz-withoutGz) + " B"},
	})
	x.rep.check("edge mail adapter, gzip -9", thousands(withGz-withoutGz)+" B", "≤ 150 KB", met(withGz-withoutGz <= 150_000))
	progress("  mail adapter: +%d B raw, +%d B gzip", with-without, withGz-withoutGz)
	return nil
}
