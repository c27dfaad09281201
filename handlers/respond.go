package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/strictjson"
	"pommy.ai/edge/storage"
)

// apiError is the one error shape every route returns:
// {"error":{"code":"...","message":"..."}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the member of the request body that was refused, as a
	// dotted path ("role", "scopes[1]"), when there is one.
	Field string `json:"field,omitempty"`
	// RetryAfter, in seconds, is sent as Retry-After when non-zero.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeJSON is the one JSON response writer. It does not escape <, > and &
// as \u003c…: responses are served as application/json with nosniff and a
// CSP, never as HTML, and clients should read what was stored.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	encodeJSON(w, v)
}

// encodeJSON writes v as one line of JSON, without HTML escaping: our
// responses are never HTML, and "\u003c" for "<" only garbles messages.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

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
// so that they cannot drift from the application's.
func ErrorBody(code, message string) []byte {
	var b bytes.Buffer
	encodeJSON(&b, map[string]*apiError{"error": {Code: code, Message: message}})
	return b.Bytes()
}

// writeError maps any error onto a status and the JSON error body. Errors
// that are not *apiError are storage or internal faults: their text may hold
// details a client must not see, so only the class is reported.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
		if ae.Status >= 500 {
			log.Printf("request %s %s: %v", r.Method, r.URL.Path, err)
		}
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
}

func classify(err error) *apiError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, storage.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, storage.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "the resource changed or already exists")
	case errors.Is(err, storage.ErrInvalid):
		return errorf(http.StatusBadRequest, "invalid", "the request was refused by storage")
	case errors.Is(err, storage.ErrUnavailable):
		e := errorf(http.StatusServiceUnavailable, "unavailable", "storage is temporarily unavailable; retry later")
		e.RetryAfter = 5
		return e
	default:
		return errorf(http.StatusInternalServerError, "internal", "internal error")
	}
}

// decodeJSON is the one way a route reads a JSON body: a declared
// Content-Type must be application/json, the body may hold at most limit
// bytes, and it must pass the strict checks of package strictjson
// (duplicate and unknown keys, trailing data, invalid UTF-8, lone
// surrogates, NUL) before it fills v. A refusal is a 400 naming the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		}
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit)); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return classify(err)
			}
			return errorf(http.StatusBadRequest, "incomplete_body", "the request body could not be read to its end")
		}
	}
	if err := strictjson.Decode(body, v); err != nil {
		var se *strictjson.Error
		if !errors.As(err, &se) {
			return err
		}
		msg := "request body refused: " + se.Reason
		if se.Field != "" {
			msg = "request body refused at " + se.Field + ": " + se.Reason
		}
		return &apiError{Status: http.StatusBadRequest, Code: se.Code, Message: msg, Field: se.Field}
	}
	return nil
}
