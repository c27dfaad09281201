package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"pommy.ai/edge/handlers/strictjson"
)

// WriteJSON is the one JSON response writer. It does not escape <, > and &
// as \u003c…: responses are served as application/json with nosniff and a
// CSP, never as HTML, and clients should read what was stored.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	EncodeJSON(w, v)
}

// EncodeJSON writes v as one line of JSON, without HTML escaping: our
// responses are never HTML, and "\u003c" for "<" only garbles messages.
func EncodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// DecodeJSON is the one way a route reads a JSON body: a declared
// Content-Type must be application/json, the body may hold at most limit
// bytes (413 beyond), and it must pass the strict checks of package
// strictjson (duplicate and unknown keys, trailing data, invalid UTF-8,
// lone surrogates, NUL) before it fills v. A refusal is a 400 naming the
// field; v is then untouched.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		}
	}
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit)); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return Classify(err)
			}
			return Errorf(http.StatusBadRequest, "incomplete_body", "the request body could not be read to its end")
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
		return &Error{Status: http.StatusBadRequest, Code: se.Code, Message: msg, Field: se.Field}
	}
	return nil
}
