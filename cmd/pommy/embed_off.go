//go:build !embedguest

package main

// embeddedGuest is empty in an ordinary build: the guest is read from
// --module or build/guest.wasm. See embed_on.go.
var embeddedGuest []byte
