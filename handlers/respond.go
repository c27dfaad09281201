package handlers

import (
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
)

// WriteHomeError writes an error a home gives by itself, before or around
// the application (a body over the limit, a busy host, a worker that is not
// configured), with the same body shape and header set as the
// application's own errors. A 503 always says when to retry.
func WriteHomeError(w http.ResponseWriter, requestID string, status int, code, message string) {
	body := ErrorBody(code, message)
	h := w.Header()
	SecurityHeaders(h)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if requestID != "" {
		h.Set("X-Request-Id", requestID)
	}
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	w.Write(body)
}

// ErrorBody is the JSON error shape, {"error":{"code":…,"message":…}}, for
// the homes' own errors (those written before or around the application),
// so that they cannot drift from the application's (web.ErrorBody).
func ErrorBody(code, message string) []byte { return web.ErrorBody(code, message) }
