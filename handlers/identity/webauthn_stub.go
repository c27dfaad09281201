package identity

import (
	"context"
	"encoding/json"
	"net/http"

	"pommy.ai/edge/handlers/web"
)

// Placeholders for the WebAuthn capability: no credentials yet.

func (svc *Service) webauthnCount(ctx context.Context, user string) (int, error) { return 0, nil }

func (svc *Service) webauthnOptions(ctx context.Context, r *http.Request, user string) (json.RawMessage, json.RawMessage, error) {
	return nil, nil, web.Errorf(http.StatusNotImplemented, "not_implemented", "passkeys are not available")
}

func (svc *Service) webauthnVerify(ctx context.Context, r *http.Request, user string, session, credential json.RawMessage) ([]stmt, error) {
	return nil, web.Errorf(http.StatusNotImplemented, "not_implemented", "passkeys are not available")
}
