package handlers

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
)

// The one route table. The mux is built from it, the authorization
// middleware enforces it, and docs/permissions.md is generated from it
// (TestPermissionsDoc fails when the file and the table disagree).

// perm is what a role may do. A route needs exactly one.
type perm string

const (
	permPublic        perm = ""                   // no credential
	permSelf          perm = "self"               // any signed-in person, on their own account and sessions
	permMembersRead   perm = "members.read"       // see the tenant's people
	permMembersManage perm = "members.manage"     // invite, change roles, disable, remove
	permSettingsRead  perm = "settings.read"      // see tenant settings
	permSettingsWrite perm = "settings.write"     // change tenant settings
	permKeysManage    perm = "api_keys.manage"    // create, list, revoke API keys
	permOwnershipMove perm = "ownership.transfer" // make someone else owner, step down
	permTenantDelete  perm = "tenant.delete"      // delete the tenant and crypto-shred its data
	permAuditRead     perm = "audit.read"         // query, export and verify the audit log; security notices

	permConversationsRead  perm = "conversations.read"  // read conversations and their messages (data access, audited)
	permConversationsWrite perm = "conversations.write" // send messages; change status, assignee, labels
	permContactsRead       perm = "contacts.read"       // read contacts and their history (data access, audited)
	permContactsWrite      perm = "contacts.write"      // create, change, merge contacts
	permWebhooksManage     perm = "webhooks.manage"     // subscribe endpoints, rotate secrets, read deliveries
	permJobsManage         perm = "jobs.manage"         // see background jobs, retry dead ones

	// permVisitor is the widget's visitor (a widget token and a visitor
	// token, package widget): no role holds it and no API key scope
	// reaches it; a visitor reaches only their own conversations.
	permVisitor perm = "visitor"
)

// perms lists every permission in the order docs/permissions.md shows
// them.
var perms = []perm{permSelf, permConversationsRead, permConversationsWrite, permContactsRead, permContactsWrite,
	permMembersRead, permMembersManage, permSettingsRead, permSettingsWrite,
	permKeysManage, permWebhooksManage, permJobsManage, permAuditRead, permOwnershipMove, permTenantDelete}

// permPhrases say what each permission allows in words a person reads,
// completing "the agent role may not …". Errors show these, never the
// internal names; docs/permissions.md lists both.
var permPhrases = map[perm]string{
	permSelf:          "manage their own account and sessions",
	permMembersRead:   "see the organization's people",
	permMembersManage: "invite people, change their roles or remove them",
	permSettingsRead:  "see the organization's settings",
	permSettingsWrite: "change the organization's settings",
	permKeysManage:    "manage API keys",
	permOwnershipMove: "transfer ownership of the organization",
	permTenantDelete:  "delete the organization",
	permAuditRead:     "read the audit log",

	permConversationsRead:  "read conversations",
	permConversationsWrite: "work conversations (reply, change status, assign, label)",
	permContactsRead:       "read contacts",
	permContactsWrite:      "create, change or merge contacts",
	permWebhooksManage:     "manage webhooks",
	permJobsManage:         "see and retry background jobs",
	permVisitor:            "chat as a widget visitor",
}

// Roles, least to most privileged (web.Role*, which identity also uses).
const (
	roleAgent = web.RoleAgent
	roleAdmin = web.RoleAdmin
	roleOwner = web.RoleOwner
)

var roles = []string{roleOwner, roleAdmin, roleAgent}

// rolePerms is the least-privilege matrix: an agent works conversations but
// cannot change settings, people or keys; an admin cannot delete the tenant
// or transfer ownership.
var rolePerms = map[string][]perm{
	roleAgent: {permSelf, permConversationsRead, permConversationsWrite, permContactsRead, permContactsWrite,
		permMembersRead, permSettingsRead},
	roleAdmin: {permSelf, permConversationsRead, permConversationsWrite, permContactsRead, permContactsWrite,
		permMembersRead, permMembersManage,
		permSettingsRead, permSettingsWrite, permKeysManage, permWebhooksManage, permJobsManage, permAuditRead},
	roleOwner: {permSelf, permConversationsRead, permConversationsWrite, permContactsRead, permContactsWrite,
		permMembersRead, permMembersManage,
		permSettingsRead, permSettingsWrite, permKeysManage, permWebhooksManage, permJobsManage, permAuditRead, permOwnershipMove, permTenantDelete},
}

func roleAllows(role string, p perm) bool { return slices.Contains(rolePerms[role], p) }

// apiScope is what an API key needs for a route: resource:read or
// resource:write. Write does not imply read.
type apiScope struct {
	Resource string
	Write    bool
}

func (s apiScope) String() string {
	if s.Write {
		return s.Resource + ":write"
	}
	return s.Resource + ":read"
}

// scopeResources are the resources an API key can be given scopes on.
var scopeResources = []string{"conversations", "contacts", "members", "settings", "webhooks", "jobs"}

// APIKeyScopes lists every scope an API key can be given, resource by
// resource, read before write.
func APIKeyScopes() []string {
	var out []string
	for _, res := range scopeResources {
		out = append(out, apiScope{res, false}.String(), apiScope{res, true}.String())
	}
	return out
}

func scope(resource string, write bool) *apiScope { return &apiScope{resource, write} }

// route is one entry of the table.
type route struct {
	Method, Pattern string
	Perm            perm
	// Scope is what an API key needs; nil means API keys are refused (the
	// route needs a person's session).
	Scope   *apiScope
	Summary string
	public  web.PublicHandler
	handle  web.Handler
	// Gates a session must also pass (API keys never reach these routes:
	// each of them is session only or sets none).
	//
	// StepUp marks a dangerous action: the session must have proved a
	// password or a second factor within identity.StepUpWindow (its
	// sign-in, or POST /v1/me/reauth).
	StepUp bool
	// Verified: the person's email address must be verified.
	Verified bool
	// MFASetup opens the route to a session that the tenant's MFA policy
	// holds back until the person sets up a second factor.
	MFASetup bool
}

// stepUp, verified and mfaSetup set a route's gates (see route).
func (rt route) stepUp() route   { rt.StepUp = true; return rt }
func (rt route) verified() route { rt.Verified = true; return rt }
func (rt route) mfaSetup() route { rt.MFASetup = true; return rt }

// routes is the table. It is a method so that the handlers bind to a's
// capabilities; the table itself never depends on a's state (docs are
// generated from an empty app, whose handlers are never called).
func (a *app) routes() []route {
	pub := func(m, p, sum string, h web.PublicHandler) route {
		return route{Method: m, Pattern: p, Perm: permPublic, Summary: sum, public: h}
	}
	r := func(m, p string, pm perm, sc *apiScope, sum string, h web.Handler) route {
		return route{Method: m, Pattern: p, Perm: pm, Scope: sc, Summary: sum, handle: h}
	}
	v := func(m, p, sum string, h web.Handler) route {
		return route{Method: m, Pattern: p, Perm: permVisitor, Summary: sum, handle: h}
	}
	return []route{
		pub("GET", "/healthz", "health and version", a.healthz),
		pub("POST", "/v1/signup", "create a tenant and its owner; signs the owner in", a.id.Signup),
		pub("POST", "/v1/login", "sign in with email and password (throttled); 401 mfa_required with an mfa_token when the person has a second factor", a.id.Login),
		pub("POST", "/v1/login/mfa", "finish a sign-in with the second factor (TOTP code, recovery code or passkey) for the mfa_token", a.id.LoginMFA),
		pub("POST", "/v1/login/mfa/webauthn", "passkey options to answer an mfa_token with (then POST /v1/login/mfa with webauthn)", a.id.LoginMFAWebAuthn),
		pub("POST", "/v1/login/passkey/options", "start a passwordless sign-in with a passkey (options for navigator.credentials.get)", a.id.PasskeyLoginOptions),
		pub("POST", "/v1/login/passkey", "finish a passwordless sign-in with a passkey (throttled)", a.id.PasskeyLogin),
		pub("POST", "/v1/invitations/accept", "accept an invitation with a password; signs in", a.id.AcceptInvitation),
		pub("POST", "/v1/email/verify", "verify one's address with the mailed link's token", a.id.VerifyEmail),
		pub("POST", "/v1/email/change/confirm", "confirm a new address with the link mailed to it; the old one is told", a.id.ConfirmEmailChange),
		pub("POST", "/v1/password/forgot", "mail a password reset link, if an account uses the address (same answer either way)", a.id.ForgotPassword),
		pub("POST", "/v1/password/reset", "set a new password with a mailed reset link; ends every session", a.id.ResetPassword),
		pub("GET", "/account/{page}", "the page a mailed link opens (verify, reset, email, invitation): posts the link's token", a.id.AccountPage),
		pub("GET", "/account/assets/{name}", "the account pages' script and style", a.id.AccountAsset),

		pub("GET", "/widget.js", "the widget's loader script (one line on the tenant's site)", a.wid.Loader),
		pub("GET", "/widget/frame/{tenant}", "the widget's iframe page (frame-ancestors: the tenant's allowed origins)", a.wid.Frame),
		pub("GET", "/widget/assets/{name}", "the widget app's scripts and styles", a.wid.Asset),
		pub("GET", "/v1/widget/token", "a short-lived widget token for an allowed embedding origin (CORS)", a.wid.Token),
		pub("GET", "/v1/widget/config", "the widget's greeting, hours, form and look (widget token)", a.wid.Config),
		pub("POST", "/v1/widget/visitors", "a new anonymous visitor token (widget token)", a.wid.NewVisitor),
		pub("POST", "/v1/widget/identify", "a verified visitor token for the tenant's identity JWT (widget token)", a.wid.Identify),

		r("POST", "/v1/logout", permSelf, nil, "end the current session", a.id.Logout).mfaSetup(),
		r("GET", "/v1/me", permSelf, nil, "the signed-in person and their role", a.id.Me).mfaSetup(),
		r("PATCH", "/v1/me", permSelf, nil, "change one's name or the language of one's mail", a.id.UpdateMe),
		r("POST", "/v1/me/email", permSelf, nil, "change one's address (password); a link goes to the new one", a.id.RequestEmailChange),
		r("POST", "/v1/email/verify/resend", permSelf, nil, "mail a new verification link (1 a minute, 5 a day)", a.id.ResendVerification).mfaSetup(),
		r("POST", "/v1/me/password", permSelf, nil, "change password; ends every other session", a.id.ChangePassword),
		r("POST", "/v1/me/reauth", permSelf, nil, "step-up: prove a password or a second factor again (throttled) for the next dangerous actions", a.id.Reauth).mfaSetup(),
		r("POST", "/v1/me/reauth/webauthn", permSelf, nil, "passkey options for a step-up (then POST /v1/me/reauth with webauthn)", a.id.ReauthWebAuthn).mfaSetup(),
		r("POST", "/v1/me/passkeys/options", permSelf, nil, "start enrolling a passkey (options for navigator.credentials.create)", a.id.PasskeyOptions).mfaSetup().stepUp(),
		r("POST", "/v1/me/passkeys", permSelf, nil, "finish enrolling a passkey; the first second factor returns recovery codes (shown once)", a.id.AddPasskey).mfaSetup(),
		r("GET", "/v1/me/passkeys", permSelf, nil, "list own passkeys (name, created, last used, backed up)", a.id.ListPasskeys).mfaSetup(),
		r("PATCH", "/v1/me/passkeys/{id}", permSelf, nil, "rename a passkey", a.id.RenamePasskey),
		r("DELETE", "/v1/me/passkeys/{id}", permSelf, nil, "remove a passkey (refused when a policy needs it as the last factor)", a.id.DeletePasskey).stepUp(),
		r("POST", "/v1/me/mfa/totp", permSelf, nil, "start setting up an authenticator app (secret, otpauth URL, QR code; shown once)", a.id.EnrolTOTP).mfaSetup().stepUp(),
		r("POST", "/v1/me/mfa/totp/confirm", permSelf, nil, "confirm the authenticator app with a first code; the first factor returns recovery codes (shown once)", a.id.ConfirmTOTP).mfaSetup(),
		r("DELETE", "/v1/me/mfa/totp", permSelf, nil, "remove the authenticator app (refused when a policy needs it as the last factor)", a.id.DisableTOTP).stepUp(),
		r("POST", "/v1/me/mfa/recovery-codes", permSelf, nil, "replace the recovery codes (shown once; the old ones stop working)", a.id.RegenerateRecoveryCodes).stepUp(),
		r("GET", "/v1/sessions", permSelf, nil, "list own active sessions", a.id.ListSessions),
		r("DELETE", "/v1/sessions/{id}", permSelf, nil, "end one of own sessions", a.id.EndSession),
		r("POST", "/v1/sessions/end-others", permSelf, nil, "end all own sessions but this one", a.id.EndOtherSessions),

		r("GET", "/v1/members", permMembersRead, scope("members", false), "list people and roles", a.id.ListMembers),
		r("PATCH", "/v1/members/{id}", permMembersManage, nil, "change a person's role or status", a.id.UpdateMember),
		r("DELETE", "/v1/members/{id}", permMembersManage, nil, "remove a person from the tenant", a.id.RemoveMember),
		// Session only: an API key is a machine credential and must not mint
		// people, who would then hold more than the key's scopes.
		r("POST", "/v1/invitations", permMembersManage, nil, "invite a person with a role", a.id.CreateInvitation).verified(),
		r("GET", "/v1/invitations", permMembersManage, scope("members", false), "list pending invitations", a.id.ListInvitations),
		r("DELETE", "/v1/invitations/{id}", permMembersManage, scope("members", true), "revoke an invitation", a.id.RevokeInvitation),
		r("POST", "/v1/invitations/{id}/resend", permMembersManage, nil, "mail a pending invitation again, same link (at most 5 mails)", a.id.ResendInvitation).verified(),
		r("POST", "/v1/ownership/transfer", permOwnershipMove, nil, "make another member owner and step down to admin", a.id.TransferOwnership).stepUp(),

		r("GET", "/v1/settings", permSettingsRead, scope("settings", false), "tenant settings", a.org.GetSettings),
		r("PATCH", "/v1/settings", permSettingsWrite, scope("settings", true), "change tenant settings (name, session timeouts, MFA policy)", a.org.UpdateSettings),

		r("GET", "/v1/api-keys", permKeysManage, nil, "list API keys (prefix, scopes, use)", a.id.ListAPIKeys),
		r("POST", "/v1/api-keys", permKeysManage, nil, "create an API key (shown once)", a.id.CreateAPIKey).verified().stepUp(),
		r("DELETE", "/v1/api-keys/{id}", permKeysManage, nil, "revoke an API key", a.id.RevokeAPIKey),

		r("GET", "/v1/audit/events", permAuditRead, nil, "audit events, newest first, filtered", a.auditRoute(audit.QueryHandler(a.auditLog()))),
		r("GET", "/v1/audit/export", permAuditRead, nil, "export audit events as NDJSON", a.auditRoute(audit.ExportHandler(a.auditLog()))),
		r("GET", "/v1/audit/verify", permAuditRead, nil, "verify the audit hash chain", a.auditRoute(audit.VerifyHandler(a.auditLog()))),
		r("GET", "/v1/audit/notices", permAuditRead, nil, "security notices (login bursts, new locations)", a.auditRoute(audit.NoticesHandler(a.auditLog()))),
		// Session only, like the audit log: the mail log names people's addresses.
		r("GET", "/v1/mail", permAuditRead, nil, "the mail sent about the organization: to, template, status (never a body or a link), newest first", mail.List),

		r("GET", "/v1/webhooks", permWebhooksManage, scope("webhooks", false), "list webhook subscriptions", a.hooks().List),
		r("POST", "/v1/webhooks", permWebhooksManage, scope("webhooks", true), "subscribe an HTTPS endpoint to events (secret shown once)", a.hooks().Create),
		r("GET", "/v1/webhooks/{id}", permWebhooksManage, scope("webhooks", false), "read a webhook subscription", a.hooks().Get),
		r("PATCH", "/v1/webhooks/{id}", permWebhooksManage, scope("webhooks", true), "change a subscription's url, events, description or enabled", a.hooks().Update),
		r("DELETE", "/v1/webhooks/{id}", permWebhooksManage, scope("webhooks", true), "delete a subscription; its pending deliveries fail", a.hooks().Delete),
		r("POST", "/v1/webhooks/{id}/rotate", permWebhooksManage, scope("webhooks", true), "rotate the signing secret (shown once; the old one also signs for 24 h)", a.hooks().Rotate),
		r("GET", "/v1/webhooks/{id}/deliveries", permWebhooksManage, scope("webhooks", false), "a subscription's delivery log, newest first", a.hooks().Deliveries),

		r("GET", "/v1/jobs", permJobsManage, scope("jobs", false), "background jobs, newest first, filtered by state and kind (dead ones included)", a.jobsAPI().List),
		r("POST", "/v1/jobs/{id}/retry", permJobsManage, scope("jobs", true), "send a dead job back to the queue with its attempts reset (audited)", a.jobsAPI().Retry),

		r("GET", "/v1/widget/settings", permSettingsRead, scope("settings", false), "the widget's settings and allowed origins", a.wid.GetSettings),
		r("PATCH", "/v1/widget/settings", permSettingsWrite, scope("settings", true), "change the widget's settings and allowed origins (audited)", a.wid.UpdateSettings),
		r("POST", "/v1/widget/identity-secret", permSettingsWrite, nil, "make or replace the identity JWT secret (shown once, audited)", a.wid.RotateIdentitySecret).stepUp(),

		v("PATCH", "/v1/widget/visitor", "set the visitor's attributes", a.convs().VisitorUpdate),
		v("GET", "/v1/widget/conversations", "the visitor's conversations", a.convs().VisitorConversations),
		v("POST", "/v1/widget/conversations", "start a conversation (Idempotency-Key)", a.convs().VisitorStart),
		v("GET", "/v1/widget/conversations/{id}", "one of the visitor's conversations", a.convs().VisitorConversation),
		v("GET", "/v1/widget/conversations/{id}/messages", "the conversation's messages after a seq (no private notes)", a.convs().VisitorMessages),
		v("POST", "/v1/widget/conversations/{id}/messages", "send a message (Idempotency-Key)", a.convs().VisitorSend),
		v("PUT", "/v1/widget/conversations/{id}/messages/{mid}/attachment", "attach a file to one's own message (type by content, tenant's limit)", a.convs().VisitorPutAttachment),
		v("GET", "/v1/widget/conversations/{id}/messages/{mid}/attachment", "download an attachment of the conversation", a.convs().VisitorGetAttachment),
		v("POST", "/v1/widget/conversations/{id}/typing", "signal the visitor's typing", a.convs().VisitorTyping),
		v("POST", "/v1/widget/conversations/{id}/read", "record how far the visitor has read", a.convs().VisitorRead),
		v("POST", "/v1/widget/conversations/{id}/csat", "rate a resolved conversation", a.convs().VisitorCSAT),
		v("GET", "/v1/widget/conversations/{id}/events", "the conversation's events for the visitor; long-poll with wait", a.convs().VisitorEvents),
		v("GET", "/v1/widget/conversations/{id}/events/stream", "the conversation's events for the visitor as SSE", a.convs().VisitorEventStream),

		r("DELETE", "/v1/tenant", permTenantDelete, nil, "delete the tenant; crypto-shreds its data", a.org.Delete).stepUp(),

		r("POST", "/v1/contacts", permContactsWrite, scope("contacts", true), "create a contact (PII sealed)", a.convs().CreateContact),
		r("GET", "/v1/contacts", permContactsRead, scope("contacts", false), "list contacts, or find one by ?email= (audited)", a.convs().ListContacts),
		r("GET", "/v1/contacts/{id}", permContactsRead, scope("contacts", false), "read a contact (audited)", a.convs().GetContact),
		r("PATCH", "/v1/contacts/{id}", permContactsWrite, scope("contacts", true), "change a contact", a.convs().UpdateContact),
		r("DELETE", "/v1/contacts/{id}", permContactsWrite, scope("contacts", true), "delete a contact without conversations", a.convs().DeleteContact),
		r("GET", "/v1/contacts/{id}/conversations", permConversationsRead, scope("conversations", false), "a contact's conversations (audited)", a.convs().ContactConversations),

		r("POST", "/v1/conversations", permConversationsWrite, scope("conversations", true), "start a conversation, optionally with a first message", a.convs().CreateConversation),
		r("GET", "/v1/conversations", permConversationsRead, scope("conversations", false), "list conversations by activity, filtered (audited)", a.convs().ListConversations),
		r("GET", "/v1/conversations/{id}", permConversationsRead, scope("conversations", false), "read a conversation (audited)", a.convs().GetConversation),
		r("PATCH", "/v1/conversations/{id}", permConversationsWrite, scope("conversations", true), "change status, snooze, assignee, labels, priority", a.convs().UpdateConversation),
		r("POST", "/v1/conversations/{id}/merge", permConversationsWrite, scope("conversations", true), "merge another conversation of the same contact into this one", a.convs().MergeConversation),
		r("POST", "/v1/conversations/{id}/read", permConversationsWrite, scope("conversations", true), "mark read by the team", a.convs().MarkRead),
		r("POST", "/v1/conversations/{id}/typing", permConversationsWrite, scope("conversations", true), "signal typing", a.convs().Typing),
		r("POST", "/v1/conversations/{id}/messages", permConversationsWrite, scope("conversations", true), "send a message or private note (Idempotency-Key)", a.convs().SendMessage),
		r("GET", "/v1/conversations/{id}/messages", permConversationsRead, scope("conversations", false), "list messages after a seq (audited)", a.convs().ListMessages),
		r("PUT", "/v1/conversations/{id}/messages/{mid}/attachment", permConversationsWrite, scope("conversations", true), "attach a file to one's own message, once (streamed, sealed; at most 32 MiB)", a.convs().PutAttachment),
		r("GET", "/v1/conversations/{id}/messages/{mid}/attachment", permConversationsRead, scope("conversations", false), "download a message's attachment (audited)", a.convs().GetAttachment),
		r("GET", "/v1/conversations/{id}/events", permConversationsRead, scope("conversations", false), "a conversation's events after a seq; long-poll with wait", a.convs().Events),
		r("GET", "/v1/conversations/{id}/events/stream", permConversationsRead, scope("conversations", false), "a conversation's events as SSE", a.convs().EventStream),
		r("GET", "/v1/inbox/events", permConversationsRead, scope("conversations", false), "the inbox feed after a seq; long-poll with wait", a.convs().InboxEvents),
		r("GET", "/v1/inbox/events/stream", permConversationsRead, scope("conversations", false), "the inbox feed as SSE", a.convs().InboxStream),

		r("GET", "/v1/canned-responses", permConversationsRead, scope("conversations", false), "list canned responses", a.convs().ListCanned),
		r("POST", "/v1/canned-responses", permConversationsWrite, scope("conversations", true), "create a canned response", a.convs().CreateCanned),
		r("GET", "/v1/canned-responses/{id}", permConversationsRead, scope("conversations", false), "read a canned response", a.convs().GetCanned),
		r("PATCH", "/v1/canned-responses/{id}", permConversationsWrite, scope("conversations", true), "change a canned response", a.convs().UpdateCanned),
		r("DELETE", "/v1/canned-responses/{id}", permConversationsWrite, scope("conversations", true), "delete a canned response", a.convs().DeleteCanned),
	}
}

// auditRoute adapts an audit package handler: the caller's own tenant and
// identity, from the authenticated scope, are its template.
func (a *app) auditRoute(h audit.HandlerFunc) web.Handler {
	return func(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
		return h(w, r, s.Event(r))
	}
}

// auditLog is the tenants' audit log over the platform's SQL.
func (a *app) auditLog() *audit.Log { return web.AuditLog(a.p) }

// RouteInfo is one entry of the route table as seen from outside the
// package: the cross-tenant authorization matrix (tests/apitest) is
// generated from it, so a new route enters the matrix by itself.
type RouteInfo struct {
	Method, Pattern string
	// Public routes need no credential; Permission, Roles and Scope are
	// then empty.
	Public bool
	// Permission is what a role needs (e.g. "members.manage").
	Permission string
	// Roles are the roles allowed to call the route, most privileged first.
	Roles []string
	// Scope is the API key scope the route needs ("conversations:read"); "" means
	// API keys are refused (403 session_required).
	Scope   string
	Summary string
	// StepUp, Verified and MFASetup are the route's session gates
	// (route).
	StepUp, Verified, MFASetup bool
}

// Routes lists the route table, in its order.
func Routes() []RouteInfo {
	var out []RouteInfo
	for _, rt := range (&app{}).routes() {
		ri := RouteInfo{Method: rt.Method, Pattern: rt.Pattern, Public: rt.Perm == permPublic, Permission: string(rt.Perm), Summary: rt.Summary,
			StepUp: rt.StepUp, Verified: rt.Verified, MFASetup: rt.MFASetup}
		if !ri.Public {
			for _, role := range roles {
				if roleAllows(role, rt.Perm) {
					ri.Roles = append(ri.Roles, role)
				}
			}
			if rt.Scope != nil {
				ri.Scope = rt.Scope.String()
			}
		}
		out = append(out, ri)
	}
	return out
}

// mount builds the mux from the table.
func (a *app) mount(mux *http.ServeMux) {
	for _, rt := range a.routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, a.routeHandler(rt))
	}
}

func (a *app) routeHandler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.serveRoute(rt, w, r); err != nil {
			web.WriteError(w, r, err)
		}
	})
}

func safeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" }

// serveRoute is the authorization middleware: authenticate, verify origin
// for cookie-authenticated state changes, check the role or the key's scope,
// count the key's rate limit, then run the route with its tenant scope.
func (a *app) serveRoute(rt route, w http.ResponseWriter, r *http.Request) error {
	if rt.Perm == permPublic {
		if !safeMethod(r.Method) {
			if err := a.checkPublicOrigin(r); err != nil {
				return err
			}
			// Only floods are shed per address here, with the API's
			// general limit: the address alone must not decide who may
			// sign in, since many people share one (checkPassword).
			if err := a.shedIP(r); err != nil {
				return err
			}
		}
		return rt.public(w, r)
	}
	if rt.Perm == permVisitor {
		return a.serveVisitor(rt, w, r)
	}
	s, err := a.id.Authenticate(r)
	if err != nil {
		// Failed credentials are counted per address, so guessing keys or
		// replaying stolen cookies from one place is shed before it costs
		// more lookups; authenticated traffic is limited per key and tenant.
		if shed := a.shedIP(r); shed != nil {
			return shed
		}
		return err
	}
	// A home's re-poll of a stream it holds (docs/realtime.md) is the
	// viewer's one request run again on a wake-up: its rate is the rate of
	// the topic's writes, each already counted against its writer. Counting
	// it against the viewer's limits too would end a busy conversation's
	// stream with rate_limited. Authentication and authorization still run
	// on every poll. Only a home sets the header; both remove a client's.
	poll := web.HomePoll(r)
	if !poll {
		if err := a.org.ShedRate(r, s); err != nil {
			return err
		}
	}
	if s.SessionID != "" && !safeMethod(r.Method) {
		if err := a.checkSameOrigin(r); err != nil {
			return err
		}
	}
	if err := authorize(s, rt); err != nil {
		return err
	}
	if err := sessionGates(s, rt); err != nil {
		return err
	}
	if s.KeyID != "" && !poll {
		if err := a.id.KeyRateLimit(r, s); err != nil {
			return err
		}
		if err := a.id.MarkKeyUsed(r, s); err != nil {
			return err
		}
	}
	return rt.handle(w, r, s)
}

// authorize checks a principal against a route.
func authorize(s *web.Scope, rt route) error {
	if s.KeyID != "" {
		if rt.Scope == nil {
			return web.Errorf(http.StatusForbidden, "session_required", "%s %s needs a person's session; API keys cannot use it", rt.Method, rt.Pattern)
		}
		if !slices.Contains(s.Scopes, rt.Scope.String()) {
			return web.Errorf(http.StatusForbidden, "insufficient_scope", "this API key lacks the %s scope", rt.Scope)
		}
		return nil
	}
	if !roleAllows(s.Role, rt.Perm) {
		return web.Errorf(http.StatusForbidden, "forbidden", "the %s role may not %s", s.Role, permPhrases[rt.Perm])
	}
	return nil
}

// sessionGates checks what a person's session needs beyond its role: a
// second factor where the tenant's policy wants one, a verified address,
// and a recent proof of identity for a dangerous action.
func sessionGates(s *web.Scope, rt route) error {
	if s.SessionID == "" {
		return nil
	}
	if s.MFAMissing && !rt.MFASetup {
		return web.Errorf(http.StatusForbidden, "mfa_enrolment_required",
			"your organization requires a second factor: set up an authenticator app or a passkey, then sign in with it")
	}
	if rt.Verified && !s.EmailVerified {
		return web.Errorf(http.StatusForbidden, "email_unverified",
			"verify your email address first: follow the link we mailed you (POST /v1/email/verify/resend sends a new one)")
	}
	if rt.StepUp && s.Now().Sub(s.ReauthAt) > identity.StepUpWindow {
		return web.Errorf(http.StatusForbidden, "step_up_required",
			"confirm it is you first: POST /v1/me/reauth with your password or a second factor, then try again within %d minutes",
			int(identity.StepUpWindow.Minutes()))
	}
	return nil
}

// checkSameOrigin is the CSRF defence for requests authenticated by the
// session cookie: the browser must say the request came from our own
// origin. Sec-Fetch-Site (all current browsers) is trusted first; without
// it, Origin must equal this request's own origin; with neither, the
// request is refused (a browser always sends one of them on a POST).
func (a *app) checkSameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return nil
	case "":
	default:
		return web.Errorf(http.StatusForbidden, "cross_site_request", "state-changing requests with a session cookie must come from this site")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return web.Errorf(http.StatusForbidden, "origin_required", "state-changing requests with a session cookie must carry Origin or Sec-Fetch-Site")
	}
	if !a.sameOrigin(r, origin) {
		return web.Errorf(http.StatusForbidden, "cross_site_request", "Origin %q is not this site", origin)
	}
	return nil
}

// checkPublicOrigin protects the public state-changing routes (sign-up,
// login, invitation acceptance) from login CSRF: a browser that says the
// request is cross-site is refused. Clients that are not browsers send
// neither header and are let through; they carry no ambient credential.
func (a *app) checkPublicOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return web.Errorf(http.StatusForbidden, "cross_site_request", "this request must come from this site")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !a.sameOrigin(r, o) {
		return web.Errorf(http.StatusForbidden, "cross_site_request", "Origin %q is not this site", o)
	}
	if r.Header.Get("Origin") == "null" {
		return web.Errorf(http.StatusForbidden, "cross_site_request", "opaque origins are refused")
	}
	return nil
}

// PermissionsDoc renders docs/permissions.md from the route table.
func PermissionsDoc() string {
	var b strings.Builder
	b.WriteString("# Permissions\n\n")
	b.WriteString("Generated from the route table in `handlers/routes.go` by `go test ./handlers -run TestPermissionsDoc -update`\n")
	b.WriteString("(or `POMMY_UPDATE_DOCS=1 go test ./handlers -run TestPermissionsDoc`). Do not edit by hand.\n\n")
	b.WriteString("The tenant always comes from the credential (session cookie or API key), never from the request.\n")
	b.WriteString("`yes` means the role may call the route; `—` means 403. An API key needs the scope shown;\n")
	b.WriteString("`session only` means API keys get 403 `session_required`. Public routes need no credential.\n")
	b.WriteString("`widget visitor only` routes are the chat widget's: they need a widget token and a visitor token\n")
	b.WriteString("(headers `Pommy-Widget`, `Pommy-Visitor`; docs/widget.md) and reach only that visitor's own conversations;\n")
	b.WriteString("no role and no API key may call them (401 `widget_token_invalid`).\n\n")
	b.WriteString("The gates column lists what a session needs besides its role: `step-up` (a password or second factor proved\n")
	b.WriteString("within the last 5 minutes: its sign-in or `POST /v1/me/reauth`; else 403 `step_up_required`), `verified` (a verified\n")
	b.WriteString("email address; else 403 `email_unverified`), `mfa setup` (open while the organization's MFA policy holds the session\n")
	b.WriteString("back until the person sets up a second factor; every other route answers 403 `mfa_enrolment_required` then).\n\n")
	b.WriteString("| method | path | permission | owner | admin | agent | API key scope | gates | what |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, rt := range (&app{}).routes() {
		p := string(rt.Perm)
		cells := make([]string, 0, 3)
		for _, role := range roles {
			switch {
			case rt.Perm == permPublic:
				cells = append(cells, "public")
			case roleAllows(role, rt.Perm):
				cells = append(cells, "yes")
			default:
				cells = append(cells, "—")
			}
		}
		sc := "session only"
		if rt.Scope != nil {
			sc = "`" + rt.Scope.String() + "`"
		}
		switch rt.Perm {
		case permPublic:
			p, sc = "public", "public"
		case permVisitor:
			// No role and no key reaches a visitor route: people and
			// keys get 401 widget_token_invalid there.
			cells = []string{"—", "—", "—"}
			p, sc = "widget visitor only", "—"
		}
		var gates []string
		for _, g := range []struct {
			on   bool
			name string
		}{{rt.StepUp, "step-up"}, {rt.Verified, "verified"}, {rt.MFASetup, "mfa setup"}} {
			if g.on {
				gates = append(gates, g.name)
			}
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s | %s | %s |\n", rt.Method, rt.Pattern, p, cells[0], cells[1], cells[2], sc, strings.Join(gates, ", "), rt.Summary)
	}
	b.WriteString("\n## What each permission allows\n\n")
	b.WriteString("Errors name a permission by its phrase (`the agent role may not manage API keys`), never by its internal name.\n\n")
	b.WriteString("| permission | allows a role to | roles |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| %s | %s | %s |\n", permVisitor, permPhrases[permVisitor], "none: the widget's visitors only")
	for _, p := range perms {
		var who []string
		for _, role := range roles {
			if roleAllows(role, p) {
				who = append(who, role)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", p, permPhrases[p], strings.Join(who, ", "))
	}
	b.WriteString("\n## API key scopes\n\n")
	b.WriteString("A key is given scopes `resource:read` and `resource:write` (write does not imply read) on these resources: ")
	for i, res := range scopeResources {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("`" + res + "`")
	}
	b.WriteString(".\n")
	b.WriteString("\n## Rules the table cannot show\n\n")
	b.WriteString("- Only an owner may grant the owner role, or change, disable or remove an owner.\n")
	b.WriteString("- The last active owner cannot be demoted, disabled or removed (one conditional statement decides).\n")
	b.WriteString("- Cookie-authenticated state changes must pass origin verification (`Sec-Fetch-Site` or `Origin`).\n")
	b.WriteString("- API keys are limited per key (exact, per minute, in SQL); over the limit is 429 with `Retry-After`.\n")
	b.WriteString("- Test-only routes (`/__contract/`, `/__test/`) exist only in test builds (`handlers/testroutes`: the worker and the guest built with `-tags testroutes`) and are mounted only when `Config.TestRoutes` is set.\n")
	return b.String()
}

// serveVisitor is the authorization middleware's branch for the widget's
// visitor routes: the widget capability resolves the widget and visitor
// tokens into a visitor scope (refusing an anonymous visitor where the
// tenant enforces identity), then the visitor's and the organization's
// rates are counted (a home's re-poll of a stream is not, as for people).
func (a *app) serveVisitor(rt route, w http.ResponseWriter, r *http.Request) error {
	s, err := a.wid.Authenticate(r)
	if err != nil {
		if shed := a.shedIP(r); shed != nil {
			return shed
		}
		return err
	}
	if !web.HomePoll(r) {
		if err := a.wid.ShedVisitor(r, s); err != nil {
			return err
		}
		if err := a.org.ShedRate(r, s); err != nil {
			return err
		}
	}
	return rt.handle(w, r, s)
}
