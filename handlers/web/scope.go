package web

import (
	"net/http"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// The roles a member holds, least to most privileged. What each may do is
// the route table's permission matrix (package handlers).
const (
	RoleAgent = "agent"
	RoleAdmin = "admin"
	RoleOwner = "owner"
)

// Scope is the only way a route reaches a tenant's data. Only the
// authentication of a request makes one, from a verified credential (a
// session cookie or an API key), so the tenant is never taken from a
// client-chosen id. Every query a route runs carries Tenant.
type Scope struct {
	P      storage.Platform
	Tenant string
	// Keys seals and opens the tenant's data under its data key.
	Keys *envelope.Keyring

	// A person's session ...
	UserID    string
	Role      string
	SessionID string
	// TokenHash is the session token's hash, to rotate it.
	TokenHash []byte
	// AuthMethods are how the session was authenticated, in order
	// ("password", "totp", "recovery_code", "webauthn", "passkey").
	AuthMethods []string
	// ReauthAt is when the session last proved a password or a second
	// factor (its sign-in, or a step-up): dangerous routes need it recent.
	ReauthAt time.Time
	// EmailVerified says the person proved they read mail at their
	// address.
	EmailVerified bool
	// MFAMissing says the tenant's policy wants a second factor that this
	// session lacks: only the routes that set one up are open to it.
	MFAMissing bool
	// ... or an API key.
	KeyID  string
	Scopes []string
	// KeyLimit is the key's requests per minute; KeyFirstUsed says whether
	// its first use was already recorded.
	KeyLimit     int64
	KeyFirstUsed bool
	// TenantRate is the organization's requests per minute.
	TenantRate int64

	// ... or a widget visitor (routes of permission "visitor" only): the
	// contact their visitor token names, whether the tenant verified them
	// (an identity JWT), and the embedding origin their widget token is
	// bound to. A visitor holds no role and no scope.
	VisitorID       string
	VisitorVerified bool
	WidgetOrigin    string
	// VisitorName and VisitorEmail are the identity JWT's optional claims
	// (verified visitors only), for the contact the conversations
	// capability makes when the visitor first writes.
	VisitorName, VisitorEmail string
	// Visitor is what the tenant's widget settings say about a visitor's
	// chat, read by the widget capability when it authenticated them.
	Visitor VisitorPolicy
}

// VisitorPolicy is the part of a tenant's widget settings that the
// conversations capability applies to a visitor, handed over in the scope
// so that no capability reads another's tables.
type VisitorPolicy struct {
	// AgentName is the AI agent's name, shown on its messages.
	AgentName string
	// AttachmentMaxBytes is the largest file a visitor may attach.
	AttachmentMaxBytes int64
	// CSAT says whether the visitor is asked to rate a resolved
	// conversation.
	CSAT bool
}

// Actor describes the principal for the audit log.
func (s *Scope) Actor() (typ, id string) {
	if s.VisitorID != "" {
		return audit.ActorContact, s.VisitorID
	}
	if s.KeyID != "" {
		return audit.ActorAPIKey, s.KeyID
	}
	return audit.ActorUser, s.UserID
}

// Now is the platform's clock.
func (s *Scope) Now() time.Time {
	if s.P.Clock == nil {
		return time.Now()
	}
	return s.P.Clock.Now()
}

// Record writes one audit event for the scope's principal (data access,
// a change), with where the request came from. An action whose audit
// record cannot be written must be reported as failed: return the error.
func (s *Scope) Record(r *http.Request, action, target string, details map[string]string) error {
	typ, id := s.Actor()
	return RecordEvent(r, s.P, audit.Event{TenantID: s.Tenant, ActorType: typ, ActorID: id, Action: action, Target: target, Details: details})
}

// Event is the audit event template for the scope's principal and request
// (what the audit package's handlers take as the caller).
func (s *Scope) Event(r *http.Request) audit.Event {
	typ, id := s.Actor()
	return audit.Event{TenantID: s.Tenant, ActorType: typ, ActorID: id,
		IP: ClientIP(r), UserAgent: UserAgent(r), RequestID: RequestID(r)}
}

// AuditLog is the tenants' audit log over the platform's SQL, sealing
// details under each tenant's data key.
func AuditLog(p storage.Platform) *audit.Log {
	return audit.New(p.SQL, p.Clock).Sealed(p.Keys)
}

// RecordEvent fills in where the event came from and appends it to the
// tenant's audit log; for events without a scope (a sign-up, a failed
// login).
func RecordEvent(r *http.Request, p storage.Platform, e audit.Event) error {
	e.IP, e.UserAgent, e.RequestID = ClientIP(r), UserAgent(r), RequestID(r)
	return AuditLog(p).Record(r.Context(), e)
}
