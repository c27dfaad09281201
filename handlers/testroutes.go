package handlers

import (
	"net/http"
	"strconv"
	"time"

	"pommy.ai/edge/storage/storagetest"
)

// errTrap is the panic value of /__test/trap. The secure middleware lets it
// through so that the home sees a real crash of its runtime.
var errTrap = &struct{ string }{"requested trap"}

// mountTestRoutes adds the routes that let the test suites reach inside a
// home: the storage contract suites run against the home's own adapters
// (D1/KV/R2 in workerd; the ABI-backed adapters in the guest), and fault
// triggers. Only Config.TestRoutes mounts them.
func (a *app) mountTestRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /__contract/{suite}", func(w http.ResponseWriter, r *http.Request) {
		var s storagetest.Suite
		switch r.PathValue("suite") {
		case "sql":
			s = storagetest.SQLSuite(a.p.SQL)
		case "kv":
			s = storagetest.KVSuite(a.p.KV, nil)
		case "blobs":
			s = storagetest.BlobsSuite(a.p.Blobs)
		case "keys":
			s = storagetest.KeysSuite(a.p.Keys)
		case "http":
			s = storagetest.HTTPSuite(a.p.HTTP, a.cfg.ContractHTTPURL)
		default:
			writeError(w, r, errorf(http.StatusNotFound, "not_found", "no contract suite %q", r.PathValue("suite")))
			return
		}
		writeJSON(w, http.StatusOK, storagetest.Report(s))
	})
	// /__test/trap crashes the runtime mid-request.
	mux.HandleFunc("POST /__test/trap", func(w http.ResponseWriter, r *http.Request) { panic(errTrap) })
	// /__test/sleep blocks until ms pass or the request's context ends, and
	// reports which, so a test can see the deadline reach the handler.
	mux.HandleFunc("GET /__test/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 600_000 {
			writeError(w, r, errorf(http.StatusBadRequest, "invalid", "ms must be 0..600000"))
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			writeJSON(w, http.StatusOK, map[string]string{"ended": "slept"})
		case <-r.Context().Done():
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"ended": "context", "error": r.Context().Err().Error()})
		}
	})
}
