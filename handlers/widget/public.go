package widget

import (
	"context"
	"errors"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Headers the widget's iframe sends.
const (
	HeaderWidget  = "Pommy-Widget"
	HeaderVisitor = "Pommy-Visitor"
)

// shedTenantIP counts a widget request of a tenant from one address
// (LimitWidget "t:tenant:ip") and, for a GET, against the address's flood
// limit (the middleware already counts a public POST there).
func (svc *Service) shedTenantIP(r *http.Request, tenant string) error {
	ip := web.ClientIP(r)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if err := web.Shed(r, svc.p.Limiter, storage.LimitIP, ip, "too many requests from this address; slow down"); err != nil {
			return err
		}
	}
	return web.Shed(r, svc.p.Limiter, storage.LimitWidget, web.Truncate("t:"+tenant+":"+ip, storage.MaxLimitKey),
		"too many widget requests from this address; wait a moment")
}

// Token is GET /v1/widget/token?tenant=…, called by the loader from the
// host page as a CORS simple request. Only an allowed origin gets a token
// and the Access-Control-Allow-Origin that lets the page read it; any
// other gets 403 without it, and the tenant a notice.
func (svc *Service) Token(w http.ResponseWriter, r *http.Request) error {
	tenant := r.URL.Query().Get("tenant")
	if !web.ValidID("t", tenant) {
		return web.Errorf(http.StatusNotFound, "tenant_not_found", "no organization has this widget id")
	}
	if err := svc.shedTenantIP(r, tenant); err != nil {
		return err
	}
	ctx := r.Context()
	rec, err := svc.load(ctx, tenant)
	if errors.Is(err, storage.ErrNotFound) {
		return web.Errorf(http.StatusNotFound, "tenant_not_found", "no organization has this widget id")
	}
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if !rec.allows(origin) {
		if origin != "" {
			if err := svc.noticeRefused(r, tenant, origin); err != nil {
				return err
			}
		}
		return errOrigin()
	}
	tok, exp, err := svc.mintWidget(ctx, tenant, origin, svc.now())
	if err != nil {
		return err
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	label := rec.LauncherLabel
	web.WriteJSON(w, http.StatusOK, tokenResponse{
		Token: tok, ExpiresAt: exp.UTC().Format(time.RFC3339), Origin: origin,
		FrameURL: svc.platformOrigin(r) + "/widget/frame/" + tenant + "?v=" + frameVersion(),
		Launcher: launcher{Color: rec.Color, Position: rec.Position, Label: label, Locale: rec.Locale},
	})
	return nil
}

type tokenResponse struct {
	Token     string   `json:"token"`
	ExpiresAt string   `json:"expires_at"`
	Origin    string   `json:"origin"`
	FrameURL  string   `json:"frame_url"`
	Launcher  launcher `json:"launcher"`
}

type launcher struct {
	Color    string `json:"color"`
	Position string `json:"position"`
	Label    string `json:"label"`
	Locale   string `json:"locale"`
}

// noticeRefused raises the tenant's notice of a refused origin. The
// origin is the page's choice: only a valid one of bounded length is
// named in the notice.
func (svc *Service) noticeRefused(r *http.Request, tenant, origin string) error {
	n, err := web.ParseOrigin(origin)
	if err != nil || n != origin || len(n) > 200 {
		n = ""
	}
	ev := web.AuditLog(svc.p)
	_, err = ev.RaiseWidgetOriginRefused(r.Context(), tenant, n, eventFrom(r))
	return err
}

// widget resolves the Pommy-Widget header: a valid, unexpired token whose
// origin the tenant still allows, with the tenant's settings.
func (svc *Service) widget(r *http.Request) (*widgetClaims, *record, error) {
	ctx := r.Context()
	c, err := parseWidget(r.Header.Get(HeaderWidget), svc.mac(ctx, macPurposeWidget), svc.now())
	if errors.Is(err, errToken) {
		return nil, nil, errWidgetToken()
	}
	if err != nil {
		return nil, nil, err
	}
	rec, err := svc.load(ctx, c.T)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, errWidgetToken()
	}
	if err != nil {
		return nil, nil, err
	}
	if !rec.allows(c.O) {
		return nil, nil, errOrigin()
	}
	return c, rec, nil
}

// configResponse is GET /v1/widget/config.
type configResponse struct {
	TenantName     string         `json:"tenant_name"`
	Greeting       string         `json:"greeting"`
	OfflineMessage string         `json:"offline_message"`
	BusinessHours  *BusinessHours `json:"business_hours"`
	PreChat        PreChat        `json:"pre_chat"`
	Color          string         `json:"color"`
	Position       string         `json:"position"`
	Locale         string         `json:"locale"`
	AgentName      string         `json:"agent_name"`
	Identity       string         `json:"identity"`
	CSAT           bool           `json:"csat"`
	Attachments    attachments    `json:"attachments"`
}

type attachments struct {
	MaxBytes int64    `json:"max_bytes"`
	Types    []string `json:"types"`
}

// Config is GET /v1/widget/config (widget token).
func (svc *Service) Config(w http.ResponseWriter, r *http.Request) error {
	c, rec, err := svc.widget(r)
	if err != nil {
		return err
	}
	if err := svc.shedTenantIP(r, c.T); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, configResponse{
		TenantName: rec.TenantName, Greeting: rec.Greeting, OfflineMessage: rec.OfflineMessage,
		BusinessHours: rec.BusinessHours, PreChat: rec.PreChat, Color: rec.Color, Position: rec.Position,
		Locale: rec.Locale, AgentName: rec.AgentName, Identity: rec.Identity, CSAT: rec.CSAT,
		Attachments: attachments{MaxBytes: rec.AttachmentMaxBytes, Types: svc.AttachmentTypes},
	})
	return nil
}

type visitorResponse struct {
	VisitorToken string `json:"visitor_token"`
	VisitorID    string `json:"visitor_id"`
	Verified     bool   `json:"verified"`
	ExpiresAt    string `json:"expires_at"`
}

// NewVisitor is POST /v1/widget/visitors (widget token): an anonymous
// visitor token for a fresh random contact id. Nothing is written: the
// conversations capability makes the contact when the visitor first
// writes.
func (svc *Service) NewVisitor(w http.ResponseWriter, r *http.Request) error {
	c, rec, err := svc.widget(r)
	if err != nil {
		return err
	}
	if err := svc.shedTenantIP(r, c.T); err != nil {
		return err
	}
	var body struct{}
	if err := web.DecodeJSON(w, r, 1<<10, &body); err != nil {
		return err
	}
	if rec.Identity == IdentityEnforce {
		return errIdentityRequired()
	}
	exp := svc.now().Add(AnonymousVisitor).Truncate(time.Second)
	vc := visitorClaims{T: c.T, C: web.NewID("ct"), E: exp.Unix()}
	tok, err := svc.mintVisitor(r.Context(), vc)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, visitorResponse{VisitorToken: tok, VisitorID: vc.C, ExpiresAt: exp.UTC().Format(time.RFC3339)})
	return nil
}

// Identify is POST /v1/widget/identify (widget token): the tenant's
// identity JWT for a verified visitor token, valid as long as the JWT.
func (svc *Service) Identify(w http.ResponseWriter, r *http.Request) error {
	c, rec, err := svc.widget(r)
	if err != nil {
		return err
	}
	if err := svc.shedTenantIP(r, c.T); err != nil {
		return err
	}
	var body struct {
		JWT string `json:"jwt"`
	}
	if err := web.DecodeJSON(w, r, 4*maxIdentityJWT, &body); err != nil {
		return err
	}
	ctx := r.Context()
	if rec.Identity == IdentityOff || len(rec.SecretSealed) == 0 {
		return web.Errorf(http.StatusConflict, "identity_not_configured", "this organization does not verify visitors (identity is off or it has no identity secret)")
	}
	secret, err := svc.identitySecret(ctx, c.T, rec)
	if err != nil {
		return err
	}
	id, err := verifyIdentity(body.JWT, secret, svc.now())
	if err != nil {
		return web.Errorf(http.StatusUnauthorized, "identity_invalid", "%s", err.Error())
	}
	tok, vc, err := svc.verifiedVisitor(ctx, c.T, id)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, visitorResponse{VisitorToken: tok, VisitorID: vc.C, Verified: true, ExpiresAt: time.Unix(vc.E, 0).UTC().Format(time.RFC3339)})
	return nil
}

func (svc *Service) verifiedVisitor(ctx context.Context, tenant string, id *identity) (string, visitorClaims, error) {
	contact, err := svc.subjectContact(ctx, tenant, id.Sub)
	if err != nil {
		return "", visitorClaims{}, err
	}
	vc := visitorClaims{T: tenant, C: contact, V: true, N: id.Name, M: id.Email, E: id.Exp.Unix()}
	tok, err := svc.mintVisitor(ctx, vc)
	return tok, vc, err
}
