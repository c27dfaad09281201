package testroutes

import (
	"net/http"

	"pommy.ai/edge/handlers"
)

// mountClock mounts /__test/clock: the home's own time (its storage.Clock,
// which a test may be moving by hand), so that a suite computes the TOTP
// codes an authenticator app would show at the server's present.
func mountClock(mux *http.ServeMux, env handlers.TestEnv) {
	mux.HandleFunc("GET /__test/clock", func(w http.ResponseWriter, r *http.Request) {
		env.WriteJSON(w, http.StatusOK, map[string]int64{"now_ms": env.Platform.Clock.Now().UnixMilli()})
	})
}
