//go:build nopasskeys

package identity

import (
	"context"
	"encoding/json"
	"net/http"

	"pommy.ai/edge/handlers/web"
)

// A build without passkeys (-tags nopasskeys), for one thing only: `make
// bench` builds the edge worker with and without them and reports the
// bytes they add (BENCHMARKS.md). Nothing ships it.

var errNoPasskeys = web.Errorf(http.StatusNotImplemented, "not_implemented", "this build has no passkeys")

func (svc *Service) webauthnCount(ctx context.Context, user string) (int, error) { return 0, nil }

func (svc *Service) webauthnOptions(ctx context.Context, r *http.Request, user string) (json.RawMessage, json.RawMessage, error) {
	return nil, nil, errNoPasskeys
}

func (svc *Service) webauthnVerify(ctx context.Context, r *http.Request, user string, session, credential json.RawMessage) ([]stmt, error) {
	return nil, errNoPasskeys
}

func (svc *Service) PasskeyOptions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) AddPasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) ListPasskeys(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) RenamePasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) DeletePasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) ReauthWebAuthn(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return errNoPasskeys
}
func (svc *Service) LoginMFAWebAuthn(w http.ResponseWriter, r *http.Request) error {
	return errNoPasskeys
}
func (svc *Service) PasskeyLoginOptions(w http.ResponseWriter, r *http.Request) error {
	return errNoPasskeys
}
func (svc *Service) PasskeyLogin(w http.ResponseWriter, r *http.Request) error { return errNoPasskeys }
