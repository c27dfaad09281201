package conversations

import (
	"errors"
	"fmt"

	"pommy.ai/edge/handlers/web"
)

// fail is a client error naming the field of the request it refuses ("" for none).
func fail(status int, code, field, format string, args ...any) error {
	return &web.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...), Field: field}
}

var (
	newID   = web.NewID
	validID = web.ValidID
	millis  = web.Millis
)

func asError(err error, target **web.Error) bool { return errors.As(err, target) }
