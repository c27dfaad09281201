package web

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"

	"pommy.ai/edge/storage"
)

// Error is the one error shape every route returns:
// {"error":{"code":"...","message":"...","field":"..."}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the member of the request body that was refused, as a
	// dotted path ("role", "scopes[1]"), when there is one.
	Field string `json:"field,omitempty"`
	// RetryAfter, in seconds, is sent as Retry-After when non-zero.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WriteError maps any error onto a status and the JSON error body. Errors
// that are not *Error are storage or internal faults: their text may hold
// details a client must not see, so only the class is reported (and the
// fault is logged for 5xx).
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = Classify(err)
		if ae.Status >= 500 {
			log.Printf("request %s %s: %v", r.Method, r.URL.Path, err)
		}
	}
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	WriteJSON(w, ae.Status, map[string]*Error{"error": ae})
}

// Classify turns a storage or transport fault into the *Error a client
// sees: a body over its limit is 413, the storage sentinels map to 404,
// 409, 400 and 503, anything else is a bare 500.
func Classify(err error) *Error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, storage.ErrNotFound):
		return Errorf(http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, storage.ErrConflict):
		return Errorf(http.StatusConflict, "conflict", "the resource changed or already exists")
	case errors.Is(err, storage.ErrInvalid):
		return Errorf(http.StatusBadRequest, "invalid", "the request was refused by storage")
	case errors.Is(err, storage.ErrUnavailable):
		e := Errorf(http.StatusServiceUnavailable, "unavailable", "storage is temporarily unavailable; retry later")
		e.RetryAfter = 5
		return e
	default:
		return Errorf(http.StatusInternalServerError, "internal", "internal error")
	}
}

// ErrorBody is the JSON error shape, {"error":{"code":…,"message":…}}, as
// bytes, for errors written outside WriteError (the homes' own).
func ErrorBody(code, message string) []byte {
	var b bytes.Buffer
	EncodeJSON(&b, map[string]*Error{"error": {Code: code, Message: message}})
	return b.Bytes()
}
