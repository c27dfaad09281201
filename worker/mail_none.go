//go:build js && wasm && pommy_nomail

package main

import "pommy.ai/edge/storage"

// mailer: a worker built with -tags pommy_nomail has no mail adapter. It
// exists only so that the benchmarks can measure what the adapter adds to
// the worker (tests/bench); nothing ships it.
func mailer(storage.HTTPDoer) (storage.Mailer, error) { return nil, nil }
