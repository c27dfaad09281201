// Package testroutes is the test-only part of the application: the routes
// that let the test suites reach inside a home. /__contract/{suite} runs a
// storage contract suite (storage/storagetest) against the home's own
// adapters (D1, KV and R2 in workerd; the ABI-backed adapters in the guest);
// /__test/ holds fault triggers and in-runtime measurements.
//
// Importing it registers the routes with handlers.New, which mounts them
// when handlers.Config.TestRoutes is set. Only test programs import it: the
// edge worker and the wasip1 guest do so only when built with
// -tags testroutes, so the shipped modules contain neither these routes nor
// the contract suites (docs/decisions.md, "Test code stays out of the
// shipped modules").
package testroutes

import (
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"strconv"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/storage/passwords"
	"pommy.ai/edge/storage/storagetest"
)

func init() { handlers.RegisterTestRoutes(mount) }

func mount(mux *http.ServeMux, env handlers.TestEnv) {
	mountStream(mux, env)
	writeJSON, writeError, errorf := env.WriteJSON, env.WriteError, env.Errorf
	mountWebhooks(mux, env)
	mountAccounts(mux, env)
	mountClock(mux, env)
	mountPasskeyPage(mux, env)
	mountAccountLinks(mux, env)
	mux.HandleFunc("GET /__contract/{suite}", func(w http.ResponseWriter, r *http.Request) {
		var s storagetest.Suite
		switch r.PathValue("suite") {
		case "sql":
			s = storagetest.SQLSuite(env.Platform.SQL)
		case "kv":
			s = storagetest.KVSuite(env.Platform.KV, nil)
		case "blobs":
			s = storagetest.BlobsSuite(env.Platform.Blobs)
		case "keys":
			s = storagetest.KeysSuite(env.Platform.Keys)
		case "http":
			s = storagetest.HTTPSuite(env.Platform.HTTP, env.Config.ContractHTTPURL)
		case "passwords":
			if env.Platform.Passwords == nil {
				writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "this home has no Passwords port"))
				return
			}
			s = storagetest.PasswordsSuite(env.Platform.Passwords)
		case "mail":
			if env.Platform.Mail == nil || env.Config.ContractMailURL == "" {
				writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "this home has no mail service, or no inbox to read it from (ContractMailURL)"))
				return
			}
			s = storagetest.MailSuite(env.Platform.Mail, storagetest.MailpitInbox(env.Platform.HTTP, env.Config.ContractMailURL), storagetest.RefusedMailTo)
		case "limiter":
			if env.Platform.Limiter == nil {
				writeError(w, r, errorf(http.StatusServiceUnavailable, "unavailable", "this home has no Limiter port"))
				return
			}
			s = storagetest.LimiterSuite(env.Platform.Limiter)
		default:
			writeError(w, r, errorf(http.StatusNotFound, "not_found", "no contract suite %q", r.PathValue("suite")))
			return
		}
		writeJSON(w, http.StatusOK, storagetest.Report(s))
	})
	// /__test/trap crashes the runtime mid-request.
	mux.HandleFunc("POST /__test/trap", func(w http.ResponseWriter, r *http.Request) { panic(env.Trap) })
	// /__test/aead seals the given number of bytes with AES-256-GCM in this
	// runtime's own software (not the home's key custodian), so benchmarks
	// can compare it with the custodian's native speed.
	mux.HandleFunc("GET /__test/aead", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("bytes"))
		if err != nil || n <= 0 || n > 1<<30 {
			writeError(w, r, errorf(http.StatusBadRequest, "invalid", "bytes must be 1..2^30"))
			return
		}
		key := make([]byte, 32)
		rand.Read(key)
		dk, _ := keyring.NewDataKey(key)
		chunk := make([]byte, 64<<10)
		out := make([]byte, 0, len(chunk)+16)
		nonce := make([]byte, 12)
		start := time.Now()
		for done := 0; done < n; done += len(chunk) {
			binary.BigEndian.PutUint64(nonce, uint64(done))
			out, _ = dk.Seal(out[:0], nonce, chunk[:min(len(chunk), n-done)], nil)
		}
		writeJSON(w, http.StatusOK, map[string]int64{"bytes": int64(n), "ns": time.Since(start).Nanoseconds()})
	})
	// /__test/argon2 hashes one password with argon2id at the default
	// parameters twice: in this runtime's own software (storage/passwords
	// compiled into it) and through the home's Passwords port (native in the
	// local host, the same Go code at the edge), and reports both times, so
	// benchmarks can show what the port buys (docs/decisions.md).
	mux.HandleFunc("GET /__test/argon2", func(w http.ResponseWriter, r *http.Request) {
		h, err := passwords.New(passwords.Options{Concurrency: 1})
		if err != nil {
			writeError(w, r, err)
			return
		}
		pw := []byte("correct horse battery staple")
		start := time.Now()
		if _, err := h.Hash(r.Context(), pw); err != nil {
			writeError(w, r, err)
			return
		}
		out := map[string]any{"params": h.Params(), "runtimeNs": time.Since(start).Nanoseconds()}
		if env.Platform.Passwords != nil {
			start = time.Now()
			if _, err := env.Platform.Passwords.Hash(r.Context(), pw); err != nil {
				writeError(w, r, err)
				return
			}
			out["portNs"] = time.Since(start).Nanoseconds()
		}
		writeJSON(w, http.StatusOK, out)
	})
	// /__test/spin busy-loops for ms, ignoring the request's context, like a
	// runaway handler: only the home can stop it.
	mux.HandleFunc("GET /__test/spin", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 600_000 {
			writeError(w, r, errorf(http.StatusBadRequest, "invalid", "ms must be 0..600000"))
			return
		}
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		n := 0
		for time.Now().Before(end) {
			n++
		}
		writeJSON(w, http.StatusOK, map[string]any{"ended": "spun", "iterations": n})
	})
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
