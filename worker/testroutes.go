//go:build js && wasm && testroutes

package main

// A test build of the worker (make -f worker/worker.mk worker
// WORKER_TAGS=testroutes) links the test-only routes and the storage
// contract suites; the shipped worker does not, and answers 503 when
// POMMY_TEST_ROUTES asks for them.
import _ "pommy.ai/edge/handlers/testroutes"
