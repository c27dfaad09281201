// Command build builds the tests' SMTP server (mailpit, tests/mailpit) into
// the shared tools cache unless it is there already, and prints its path.
// `make test` runs it first, so that a first build shows its progress
// instead of happening silently inside a test binary.
package main

import (
	"fmt"
	"os"

	"pommy.ai/edge/tests/mailpit"
)

func main() {
	if os.Getenv("POMMY_SKIP_MAILPIT") == "1" {
		fmt.Println("POMMY_SKIP_MAILPIT=1: not building mailpit")
		return
	}
	bin, err := mailpit.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailpit:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
