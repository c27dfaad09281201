package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"strconv"

	"pommy.ai/edge/storage"
)

// apiError is the one error shape every route returns:
// {"error":{"code":"...","message":"..."}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, in seconds, is sent as Retry-After when non-zero.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
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
		e := errorf(http.StatusServiceUnavailable, "unavailable", "storage is temporarily unavailable; nothing was changed, retry later")
		e.RetryAfter = 5
		return e
	default:
		return errorf(http.StatusInternalServerError, "internal", "internal error")
	}
}

// decodeJSON reads a JSON object of at most limit bytes into v, refusing
// unknown fields and trailing data so that typos fail loudly.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return classify(err)
		}
		return errorf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON for this route: %v", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "malformed_json", "request body has data after the JSON object")
	}
	return nil
}

func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	return err.Error()
}
