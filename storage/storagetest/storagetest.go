// Package storagetest holds the contract suites that every adapter of a
// storage port must pass, whatever home it runs in.
//
// The suites do not import "testing": the same cases run under go test
// (in-process adapters), inside the wasip1 guest and inside the edge worker,
// where a test-only route runs them and reports the results as JSON. A
// *testing.T satisfies T.
package storagetest

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// T is the part of *testing.T the suites use.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Case is one named contract check.
type Case struct {
	Name string
	Run  func(t T)
}

// Suite is the contract of one port bound to one adapter.
type Suite struct {
	Name  string
	Cases []Case
}

// Run runs the suite as subtests of a *testing.T (or anything with the same
// Run method shape).
func Run[U interface {
	T
	Run(string, func(U)) bool
}](t U, s Suite) {
	for _, c := range s.Cases {
		t.Run(c.Name, func(t U) { c.Run(t) })
	}
}

// Result is the outcome of one case run by Report.
type Result struct {
	Name     string   `json:"name"`
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
	Logs     []string `json:"logs,omitempty"`
}

// Report runs every case outside go test and collects the outcomes, so a
// home without a test runner (the guest, the worker) can return them.
func Report(s Suite) []Result {
	out := make([]Result, 0, len(s.Cases))
	for _, c := range s.Cases {
		r := &recorder{}
		func() {
			defer func() {
				if v := recover(); v != nil && v != errFatal {
					r.failures = append(r.failures, fmt.Sprintf("panic: %v\n%s", v, trim(debug.Stack())))
				}
			}()
			c.Run(r)
		}()
		out = append(out, Result{Name: c.Name, Passed: len(r.failures) == 0, Failures: r.failures, Logs: r.logs})
	}
	return out
}

var errFatal = new(int)

// recorder is safe for concurrent use: cases report from goroutines.
type recorder struct {
	mu             sync.Mutex
	failures, logs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Logf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(f, a...))
}
func (r *recorder) Errorf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(f, a...))
}
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...); panic(errFatal) }

func trim(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[:2000]
	}
	return strings.TrimSpace(s)
}

// Without returns the suite minus the named cases, for a home that cannot
// meet one of them for a documented reason outside the adapter (say so at
// the call site).
func (s Suite) Without(names ...string) Suite {
	out := Suite{Name: s.Name}
	for _, c := range s.Cases {
		skip := false
		for _, n := range names {
			if c.Name == n {
				skip = true
			}
		}
		if !skip {
			out.Cases = append(out.Cases, c)
		}
	}
	return out
}
