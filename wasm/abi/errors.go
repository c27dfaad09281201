package abi

import (
	"context"
	"errors"
	"strconv"

	"pommy.ai/edge/storage"
)

// Code is the status of a reply. Codes carry the storage port's error
// sentinels across the boundary, so that errors.Is(err, storage.ErrNotFound)
// holds in the guest for an error the host's adapter returned.
type Code uint8

const (
	CodeOK          Code = 0
	CodeNotFound    Code = 1 // storage.ErrNotFound
	CodeUnavailable Code = 2 // storage.ErrUnavailable
	CodeInvalid     Code = 3 // storage.ErrInvalid
	CodeConflict    Code = 4 // storage.ErrConflict
	CodeInternal    Code = 5 // anything else
	CodeDeadline    Code = 6 // context.DeadlineExceeded
	CodeCanceled    Code = 7 // context.Canceled
	CodeTooLarge    Code = 8 // a size limit (also storage.ErrInvalid); a request body over the limit

	codeEnd Code = 9 // one past the last code
)

var codeNames = [...]string{
	CodeOK:          "ok",
	CodeNotFound:    "notfound",
	CodeUnavailable: "unavailable",
	CodeInvalid:     "invalid",
	CodeConflict:    "conflict",
	CodeInternal:    "internal",
	CodeDeadline:    "deadline",
	CodeCanceled:    "canceled",
	CodeTooLarge:    "toolarge",
}

func (c Code) String() string {
	if c < codeEnd {
		return codeNames[c]
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Error is an error reply as the guest sees it. It unwraps to the sentinel
// its code stands for.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel for the code, or nil for CodeInternal.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeNotFound:
		return storage.ErrNotFound
	case CodeUnavailable:
		return storage.ErrUnavailable
	case CodeInvalid, CodeTooLarge:
		return storage.ErrInvalid
	case CodeConflict:
		return storage.ErrConflict
	case CodeDeadline:
		return context.DeadlineExceeded
	case CodeCanceled:
		return context.Canceled
	}
	return nil
}

// CodeOf maps an error to the code that best preserves it. The storage
// sentinels are checked before the context errors: an adapter that reports
// ErrUnavailable because its context ended has said what it means.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeOK
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, storage.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, storage.ErrConflict):
		return CodeConflict
	case errors.Is(err, storage.ErrInvalid):
		return CodeInvalid
	case errors.Is(err, storage.ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadline
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeInternal
}

// ErrorMessage is the body of an error reply.
type ErrorMessage struct{ Message string }

func (m *ErrorMessage) Encode(e *Encoder) { e.String(m.Message) }
func (m *ErrorMessage) Decode(d *Decoder) { m.Message = d.String() }
