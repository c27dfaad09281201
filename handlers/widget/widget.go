// Package widget is the embedded chat widget's side of the platform: the
// tenant's widget settings and allowed origins, the short-lived widget
// tokens bound to an embedding origin, visitor tokens (anonymous, or
// verified with the tenant's identity JWT), the notices of refused
// origins, and the loader, frame page and assets, served under a strict
// CSP. What a visitor may read and write in a conversation is the
// conversations capability's (its visitor routes); this package only says
// who the visitor is.
package widget

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// Service is the widget capability bound to a home's platform.
type Service struct {
	p storage.Platform
	// publicOrigins are the home's configured public origins (may be
	// empty), for the absolute frame URL the loader opens.
	publicOrigins []string
	// AttachmentTypes are the file types a visitor may attach, offered by
	// the widget's file picker: the list the conversations capability
	// enforces by content (conversations.AllowedTypes), handed over by the
	// route table's package so that there is one list.
	AttachmentTypes []string
}

// New returns the widget capability. publicOrigins are the origins the
// home is reached at (handlers.Config.PublicOrigins, normalized); empty
// means the request's own Host.
func New(p storage.Platform, publicOrigins []string) *Service {
	return &Service{p: p, publicOrigins: publicOrigins}
}

func (svc *Service) keys() *envelope.Keyring { return envelope.New(svc.p) }

func (svc *Service) now() time.Time {
	if svc.p.Clock == nil {
		return time.Now().UTC()
	}
	return svc.p.Clock.Now()
}

func randRead(b []byte) { rand.Read(b) }

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// platformOrigin is this platform's origin as the browser reaches it: a
// configured public origin (the one of the request's Host, else the
// first), else the request's own Host with the request's scheme.
func (svc *Service) platformOrigin(r *http.Request) string {
	for _, o := range svc.publicOrigins {
		if strings.EqualFold(strings.SplitN(o, "://", 2)[1], r.Host) {
			return o
		}
	}
	if len(svc.publicOrigins) > 0 {
		return svc.publicOrigins[0]
	}
	// The edge hands the application the request's absolute URL, so its
	// scheme is what the browser used (http only under wrangler dev); a
	// server request has none, and TLS says.
	scheme := r.URL.Scheme
	if scheme != "http" && scheme != "https" {
		scheme = "http"
		if r.TLS != nil || svc.p.Home == "edge" {
			scheme = "https"
		}
	}
	return scheme + "://" + r.Host
}

// Error codes of the widget's credentials (docs/widget.md).
func errWidgetToken() error {
	return web.Errorf(http.StatusUnauthorized, "widget_token_invalid", "the widget token is missing, invalid or expired; get a fresh one from GET /v1/widget/token")
}

func errVisitorToken() error {
	return web.Errorf(http.StatusUnauthorized, "visitor_token_invalid", "the visitor token is missing, invalid or expired; mint one with POST /v1/widget/visitors or /v1/widget/identify")
}

func errOrigin() error {
	return web.Errorf(http.StatusForbidden, "origin_not_allowed", "this site is not one of the widget's allowed origins")
}

func errIdentityRequired() error {
	return web.Errorf(http.StatusForbidden, "identity_required", "this organization chats only with signed-in visitors; the page must identify the visitor (Pommy.identify)")
}
