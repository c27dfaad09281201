package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/wasm/host/local"
)

// auditMain runs `pommy audit <command> [flags]` and returns the exit code:
// 0 every chain verified, 1 a chain is tampered, 2 usage or storage error.
//
//	pommy audit verify --data ./data [--tenant t_…]
//
// It opens the local platform on --data and verifies natively on its SQLite
// database (no guest is started). Do not run it against a data directory
// that a running server has open only if your filesystem lacks POSIX locks;
// SQLite's WAL lets it read alongside the server otherwise.
func auditMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintf(stderr, "Usage: pommy audit verify [--data dir] [--tenant id]\n\nVerifies the tenants' audit hash chains; exit code 0 intact, 1 tampered, 2 error.\n")
	}
	if len(args) == 0 || args[0] != "verify" {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("pommy audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	def := getenv("POMMY_DATA")
	if def == "" {
		def = "./data"
	}
	data := fs.String("data", def, "data `directory` (POMMY_DATA)")
	tenant := fs.String("tenant", "", "verify only this tenant `id` (default: every tenant with audit data)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pommy audit verify: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Refuse a directory without a database rather than create an empty
	// platform there and report "no audit data".
	if _, err := os.Stat(filepath.Join(*data, "pommy.db")); err != nil {
		fmt.Fprintf(stderr, "pommy audit verify: no database in %s: %v\n", *data, err)
		return 2
	}
	p, err := local.Open(ctx, local.Config{Dir: *data})
	if err != nil {
		fmt.Fprintln(stderr, "pommy audit verify:", err)
		return 2
	}
	defer p.Close()
	ok, err := audit.New(p.SQL, p.Clock).Sealed(p.Keys).VerifyAll(ctx, *tenant, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "pommy audit verify:", err)
		return 2
	}
	if !ok {
		return 1
	}
	return 0
}
