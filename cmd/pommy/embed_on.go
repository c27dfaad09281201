//go:build embedguest

package main

import _ "embed"

// embeddedGuest is the guest compiled into the binary, for a single-file
// distribution: copy build/guest.wasm to cmd/pommy/guest.wasm and build
// with -tags embedguest.
//
//go:embed guest.wasm
var embeddedGuest []byte
