//go:build testroutes

package main

// A test build of the guest (go build -tags testroutes) links the test-only
// routes and the storage contract suites; the shipped guest does not, and
// refuses to start when asked for them.
import _ "pommy.ai/edge/handlers/testroutes"
