package apitest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pommy.ai/edge/handlers"
)

// The cross-tenant authorization matrix (issue 3, item 10).
//
// Every route of the table (handlers.Routes) is called by every principal
// of tenant A — owner, admin, agent, anonymous, an API key with every scope
// and one lacking the route's scope — once with A's own ids and once with
// tenant B's ids. The expected status comes from the table alone:
//
//	anonymous                             401 unauthenticated (public routes excepted)
//	person whose role lacks the permission 403 forbidden
//	API key on a session-only route        403 session_required
//	API key without the route's scope      403 insufficient_scope
//	allowed, own ids                       the recipe's success status (2xx)
//	allowed, B's ids                       404 not_found (never 2xx, never a 403 that tells B's object exists)
//
// Routes whose request names no object (GET /v1/contacts, PATCH /v1/settings,
// ...) have no ids to swap: their "foreign" call is the same request with B's
// tenant id smuggled into headers a careless router might trust, and must
// behave exactly like the own call. After every route, B's whole state (its
// conversations, messages, an attachment, contacts, canned responses,
// webhooks, members, invitations, API keys, settings and a live
// session) must equal what it was before the matrix, and A's stable "victim"
// objects (which the denied calls aimed at) must be untouched. No response to
// A may contain any of B's ids.
//
// A route without a recipe below fails the matrix: a new route cannot be
// added without saying how it is exercised.

// mxRecipe says how to call one route.
type mxRecipe struct {
	// ids: the request names the target tenant's objects (in the path or
	// the body). Without ids the foreign column smuggles B's tenant id in
	// headers instead and expects the own column's status.
	ids bool
	// ok is the status an allowed caller gets on its own tenant (0: any 2xx).
	ok int
	// foreign and foreignCode override 404 not_found for an allowed caller
	// naming B's objects (only where the route is public and answers the same
	// for a tenant that does not exist).
	foreign     int
	foreignCode string
	// never lists callers ("agent", "admin", "key") that must be refused
	// whatever the route table says: the least-privilege promises of issue 3
	// (an agent cannot change settings, people or keys, nor read the audit
	// log; an admin cannot delete the tenant or transfer ownership; API keys
	// never manage keys, sessions or people's roles). This is the matrix's
	// one statement that does not come from the table, so that loosening the
	// table fails here (as well as in TestRouteTable).
	never []string
	build func(t testing.TB, m *matrix, x mxCase) mxCall
}

// mxCase is one cell of the matrix.
type mxCase struct {
	p       *mxPrincipal
	own     *mxTenant // the caller's tenant (A)
	target  *mxTenant // whose ids the call names: own or the other tenant
	foreign bool
	allowed bool // the table lets p call the route
}

// mxCall is the request a recipe builds.
type mxCall struct {
	path string
	body any
	hdr  []string
	// as replaces a person's fixture session for this call (a fresh session
	// or a fresh person, when the call ends the session, changes the
	// password, or demotes the caller).
	as *Session
	// stream: read the answer as a stream route's (the first SSE frame).
	stream bool
	// after runs when the call succeeded (2xx): the effect happened where
	// it should. (That nothing happened where it should not is what the
	// snapshots after each route check.)
	after func(t testing.TB, r *Response)
}

// mxPrincipal is a caller from tenant A.
type mxPrincipal struct {
	name string // owner, admin, agent, anonymous, key, key-without-scope
	role string
	sess *Session
	key  string
	// without: the key-without-scope principal's key for each scope
	without map[string]string
}

// mxTenant is a tenant and its stable objects.
type mxTenant struct {
	id                  string
	owner, admin, agent *Session
	key                 string // every scope
	// The victim: a member who never calls anything, and their session.
	victim        *Session
	victimSession string
	invitation    string // a pending invitation
	keyID, keyStr string // an API key with conversations:read
	// The chat core: a contact, two conversations of it (conv with a
	// message, msg, that has an attachment, file), a canned response.
	contact, conv, conv2, canned string
	msg                          string
	file                         []byte
	webhook                      string // a subscription

	deadJob string // a dead background job (of a kind no build runs)

	// passkey is a passkey of a member who holds one (never a fixture
	// principal, whose password sign-ins must not turn into MFA ones).
	passkey       string
	passkeyHolder *Session

	// The widget: the one allowed origin, and the identity secret (kept
	// current by the identity-secret route's recipe).
	widgetOrigin, widgetSecret string
}

type matrix struct {
	c       *Client
	a, b    *mxTenant
	secrets []string // B's ids: no response to A may contain one
	calls   int
}

// Matrix runs the cross-tenant authorization matrix against the home at c.
func Matrix(t *testing.T, c *Client) {
	start := time.Now()
	routes := handlers.Routes()
	seen := map[string]bool{}
	for _, rt := range routes {
		k := rt.Method + " " + rt.Pattern
		seen[k] = true
		if _, ok := mxRecipes[k]; !ok {
			t.Errorf("route %s (handlers/routes.go) has no entry in the cross-tenant matrix: add a recipe for %q to mxRecipes in tests/apitest/matrix.go "+
				"(how to fill its path parameters and a valid body, and which tenant's object it touches)", k, k)
		}
		if rt.Scope != "" && !slices.Contains(AllScopes, rt.Scope) {
			t.Errorf("route %s needs scope %s, which apitest.AllScopes lacks: add it", k, rt.Scope)
		}
	}
	for k := range mxRecipes {
		if !seen[k] {
			t.Errorf("matrix recipe %q names no route in handlers.Routes(): remove it or fix its key", k)
		}
	}
	if t.Failed() {
		return
	}

	m := &matrix{c: c}
	m.a = m.tenant(t, "Matrix A", true)
	m.b = m.tenant(t, "Matrix B", false)
	b := m.b
	m.secrets = []string{b.id, b.owner.UserID, b.victim.UserID, b.victimSession, b.msg, b.invitation, b.keyID, b.contact, b.conv, b.conv2, b.canned, b.webhook, b.passkey}
	principals := m.principals(t)
	m.secrets = append(m.secrets, b.deadJob)
	baseB := m.snapshot(t, m.b, true)
	baseA := m.snapshot(t, m.a, false)

	for _, rt := range routes {
		rc := mxRecipes[rt.Method+" "+rt.Pattern]
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			for _, p := range principals {
				for _, foreign := range []bool{false, true} {
					m.cell(t, rt, rc, p, foreign)
				}
			}
			// Nothing any caller of A did reached B, and the calls A's
			// principals were refused changed nothing of A's.
			diff(t, "tenant B", baseB, m.snapshot(t, m.b, true))
			diff(t, "tenant A's victim objects", baseA, m.snapshot(t, m.a, false))
		})
	}
	m.visitorMatrix(t)
	// B's audit log names none of A's people.
	exp := b.owner.Do(t, "GET", "/v1/audit/export", nil).Expect(t, 200)
	for _, id := range []string{m.a.id, m.a.owner.UserID, m.a.admin.UserID, m.a.agent.UserID} {
		if bytes.Contains(exp.Body, []byte(id)) {
			t.Errorf("tenant B's audit log mentions tenant A's %s", id)
		}
	}
	t.Logf("matrix: %d routes x %d principals x 2 tenants = %d calls in %v", len(routes), len(principals), m.calls, time.Since(start).Round(time.Millisecond))
}

// cell makes one call and checks it.
func (m *matrix) cell(t *testing.T, rt handlers.RouteInfo, rc mxRecipe, p *mxPrincipal, foreign bool) {
	t.Helper()
	x := mxCase{p: p, own: m.a, target: m.a, foreign: foreign}
	if foreign && rc.ids {
		x.target = m.b
	}
	key := p.key
	if p.without != nil {
		key = p.keyFor(rt.Scope)
	}
	want, code := 0, ""
	switch {
	case rt.Public:
		x.allowed = true
	case rt.Permission == "visitor":
		// No person, key or anonymous caller is a widget visitor.
		want, code = 401, "widget_token_invalid"
	case p.sess == nil && key == "":
		want, code = 401, "unauthenticated"
	case key != "" && rt.Scope == "":
		want, code = 403, "session_required"
	case key != "" && p.without != nil:
		want, code = 403, "insufficient_scope"
	case key != "":
		x.allowed = true
	case slices.Contains(rt.Roles, p.role):
		x.allowed = true
	default:
		want, code = 403, "forbidden"
	}
	if x.allowed && !foreign {
		who := p.role
		if key != "" {
			who = "key"
		}
		if slices.Contains(rc.never, who) {
			t.Errorf("%s %s: the route table lets %s call it, which least privilege forbids (issue 3; see the recipe's never list in tests/apitest/matrix.go)",
				rt.Method, rt.Pattern, p.name)
		}
	}
	if x.allowed && foreign && rc.ids {
		want, code = 404, "not_found"
		if rc.foreign != 0 {
			want, code = rc.foreign, rc.foreignCode
		}
	}
	call := rc.build(t, m, x)
	hdr := call.hdr
	if foreign && !rc.ids {
		hdr = append(slices.Clone(hdr), "X-Tenant-Id", m.b.id, "X-Pommy-Tenant", m.b.id)
	}
	var r *Response
	switch {
	case call.stream && p.sess != nil:
		r = p.sess.Stream(t, call.path, 1, hdr...)
	case call.stream && key != "":
		r = m.c.Stream(t, call.path, 1, append(bearer(key), hdr...)...)
	case call.stream:
		r = m.c.Stream(t, call.path, 1, hdr...)
	case p.sess != nil:
		s := p.sess
		if call.as != nil {
			s = call.as
		}
		r = s.Do(t, rt.Method, call.path, call.body, hdr...)
	case key != "":
		r = m.c.Do(t, rt.Method, call.path, call.body, append(bearer(key), hdr...)...)
	default:
		r = m.c.Do(t, rt.Method, call.path, call.body, hdr...)
	}
	m.calls++
	col := "own ids"
	if foreign {
		col = "tenant B's ids"
		if !rc.ids {
			col = "tenant B's id in headers"
		}
	}
	where := fmt.Sprintf("%s %s as %s with %s", rt.Method, call.path, p.name, col)
	for _, s := range m.secrets {
		if s != "" && bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("%s: response %d leaks tenant B's id %s: %s", where, r.Status, s, trunc(r.Body))
		}
	}
	switch {
	case want != 0:
		if r.Status != want {
			t.Errorf("%s: status %d, want %d %s: %s", where, r.Status, want, code, trunc(r.Body))
			return
		}
		if got := errCode(r); got != code {
			t.Errorf("%s: error code %q, want %q", where, got, code)
		}
	case rc.ok != 0 && r.Status != rc.ok, rc.ok == 0 && (r.Status < 200 || r.Status > 299):
		w := "2xx"
		if rc.ok != 0 {
			w = fmt.Sprint(rc.ok)
		}
		t.Errorf("%s: status %d, want %s: %s", where, r.Status, w, trunc(r.Body))
		return
	}
	if call.after != nil && r.Status >= 200 && r.Status <= 299 {
		call.after(t, r)
	}
}

// keyFor is the key the principal uses on a route needing scope.
func (p *mxPrincipal) keyFor(scope string) string {
	if p.without == nil {
		return p.key
	}
	if k, ok := p.without[scope]; ok {
		return k
	}
	return p.without[AllScopes[0]] // session-only or public: any key
}

func errCode(r *Response) string {
	var m struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return ""
	}
	return m.Error.Code
}

// tenant makes a tenant with its stable objects; full adds the admin and
// agent sessions and the keys the principals use.
func (m *matrix) tenant(t *testing.T, name string, full bool) *mxTenant {
	o := m.c.Signup(t, name)
	tn := &mxTenant{id: o.Tenant, owner: o}
	if full {
		tn.admin = o.Invite(t, "admin")
		tn.agent = o.Invite(t, "agent")
		tn.key = o.NewKey(t, AllScopes...)
	}
	tn.victim = o.Invite(t, "agent")
	tn.victimSession = sessionID(t, tn.victim)
	tn.passkeyHolder = o.Invite(t, "agent")
	tn.passkey = tn.passkeyHolder.EnrolPasskey(t, m.c.NewAuthenticator(t), "matrix")["id"].(string)
	tn.invitation = newInvitation(t, o)
	k := o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "victim", "scopes": []string{"conversations:read"}}).Expect(t, 201).JSON(t)
	tn.keyID, tn.keyStr = k["id"].(string), k["key"].(string)
	tn.contact = newContact(t, o)
	cv := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": tn.contact, "subject": "matrix " + name,
		"message": map[string]any{"text": "the first message of " + name}}).Expect(t, 201).JSON(t)
	tn.conv, tn.msg = cv["id"].(string), cv["message"].(map[string]any)["id"].(string)
	tn.file = []byte("the attachment of " + name)
	o.Do(t, "PUT", attachmentPath(tn.conv, tn.msg), tn.file).Expect(t, 201)
	tn.conv2 = newConversation(t, o, tn.contact)
	tn.canned = newCanned(t, o)
	tn.webhook = newWebhook(t, o)
	tn.deadJob = newDeadJob(t, m.c, tn.id)
	tn.widgetOrigin = "https://" + randomHex(6) + ".shop.example"
	tn.widgetSecret = o.Do(t, "POST", "/v1/widget/identity-secret", nil).Expect(t, 201).JSON(t)["secret"].(string)
	o.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{tn.widgetOrigin}, "identity": "optional"}).Expect(t, 200)
	return tn
}

// widgetToken is a widget token of tn for its allowed origin, as the
// loader gets it.
func (m *matrix) widgetToken(t testing.TB, tn *mxTenant) string {
	t.Helper()
	return m.c.Do(t, "GET", "/v1/widget/token?tenant="+tn.id, nil, "Origin", tn.widgetOrigin).Expect(t, 200).JSON(t)["token"].(string)
}

// visitor is a new anonymous visitor of tn: the two headers the iframe sends.
func (m *matrix) visitor(t testing.TB, tn *mxTenant) []string {
	t.Helper()
	wt := m.widgetToken(t, tn)
	vt := m.c.Do(t, "POST", "/v1/widget/visitors", map[string]any{}, "Pommy-Widget", wt).Expect(t, 201).JSON(t)["visitor_token"].(string)
	return []string{"Pommy-Widget", wt, "Pommy-Visitor", vt}
}

// matrixJobKind is the kind of the matrix's dead jobs: no build runs it,
// so a retried one stays queued.
const matrixJobKind = "test.matrix"

// newDeadJob makes a dead job of tenant through the test-only route.
func newDeadJob(t testing.TB, c *Client, tenant string) string {
	t.Helper()
	return c.Do(t, "POST", "/__test/jobs/dead", map[string]string{"tenant": tenant, "kind": matrixJobKind}).Expect(t, 200).JSON(t)["id"].(string)
}

// newWebhook subscribes to an event the matrix never causes, so that no
// delivery is attempted during it.
func newWebhook(t testing.TB, s *Session) string {
	t.Helper()
	return s.Do(t, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/matrix", "events": []string{"conversation.assigned"}}).Expect(t, 201).JSON(t)["id"].(string)
}

func newContact(t testing.TB, s *Session) string {
	t.Helper()
	return s.Do(t, "POST", "/v1/contacts", map[string]any{"name": "matrix contact", "email": randomEmail()}).Expect(t, 201).JSON(t)["id"].(string)
}

func newConversation(t testing.TB, s *Session, contact string) string {
	t.Helper()
	return s.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": contact}).Expect(t, 201).JSON(t)["id"].(string)
}

func newCanned(t testing.TB, s *Session) string {
	t.Helper()
	return s.Do(t, "POST", "/v1/canned-responses", map[string]any{"code": "m-" + randomHex(6), "text": "a canned reply"}).Expect(t, 201).JSON(t)["id"].(string)
}

func (m *matrix) principals(t *testing.T) []*mxPrincipal {
	a := m.a
	without := map[string]string{}
	for _, sc := range AllScopes {
		rest := slices.DeleteFunc(slices.Clone(AllScopes), func(s string) bool { return s == sc })
		without[sc] = a.owner.NewKey(t, rest...)
	}
	return []*mxPrincipal{
		{name: "owner", role: "owner", sess: a.owner},
		{name: "admin", role: "admin", sess: a.admin},
		{name: "agent", role: "agent", sess: a.agent},
		{name: "anonymous"},
		{name: "API key with every scope", key: a.key},
		{name: "API key without the route's scope", key: without[AllScopes[0]], without: without},
	}
}

func sessionID(t testing.TB, s *Session) string {
	t.Helper()
	return s.Do(t, "GET", "/v1/me", nil).Expect(t, 200).JSON(t)["session"].(map[string]any)["id"].(string)
}

func attachmentPath(conv, msg string) string {
	return "/v1/conversations/" + conv + "/messages/" + msg + "/attachment"
}

// sendAs sends a message to conv as principal p (who is then its sender).
func (m *matrix) sendAs(t testing.TB, p *mxPrincipal, conv string) string {
	t.Helper()
	path, body := "/v1/conversations/"+conv+"/messages", map[string]any{"text": "sent by " + p.name}
	var r *Response
	if p.sess != nil {
		r = p.sess.Do(t, "POST", path, body, idem()...)
	} else {
		r = m.c.Do(t, "POST", path, body, append(bearer(p.key), idem()...)...)
	}
	return r.Expect(t, 201).JSON(t)["id"].(string)
}

func newInvitation(t testing.TB, s *Session) string {
	t.Helper()
	return s.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}).Expect(t, 201).JSON(t)["id"].(string)
}

// snapshot is a tenant's state as its owner sees it. all: the whole
// tenant (B, which nothing may change); otherwise only the victim objects.
func (m *matrix) snapshot(t testing.TB, tn *mxTenant, all bool) map[string]string {
	t.Helper()
	o := tn.owner
	s := map[string]string{}
	att := o.Do(t, "GET", attachmentPath(tn.conv, tn.msg), nil)
	s["attachment "+tn.msg] = fmt.Sprintf("%d %x", att.Status, sha256.Sum256(att.Body))
	s["victim session"] = fmt.Sprint(tn.victim.Do(t, "GET", "/v1/me", nil).Status)
	pk := tn.passkeyHolder.Do(t, "GET", "/v1/me/passkeys", nil)
	s["passkeys"] = fmt.Sprintf("%d %x", pk.Status, sha256.Sum256(pk.Body))
	s["victim key"] = fmt.Sprint(m.c.Do(t, "GET", "/v1/canned-responses", nil, bearer(tn.keyStr)...).Status)
	// The chat core's stable objects (B's whole state is in them: nothing
	// of B's is made during the matrix).
	for _, id := range []string{tn.conv, tn.conv2} {
		cv := o.Do(t, "GET", "/v1/conversations/"+id, nil)
		st := cv.JSON(t)
		s["conversation "+id] = fmt.Sprintf("%d %v %v %v %v %v %v %v", cv.Status, st["status"], st["last_seq"], st["assignee_id"], st["labels"], st["priority"], st["unread"], st["merged_into"])
		ms := o.Do(t, "GET", "/v1/conversations/"+id+"/messages", nil)
		s["messages "+id] = fmt.Sprintf("%d %x", ms.Status, sha256.Sum256(ms.Body))
	}
	ct := o.Do(t, "GET", "/v1/contacts/"+tn.contact, nil)
	s["contact "+tn.contact] = fmt.Sprintf("%d %x", ct.Status, sha256.Sum256(ct.Body))
	wh := o.Do(t, "GET", "/v1/webhooks/"+tn.webhook, nil)
	whs := wh.JSON(t)
	s["webhook "+tn.webhook] = fmt.Sprintf("%d %v %v %v %v", wh.Status, whs["url"], whs["events"], whs["description"], whs["enabled"])
	cr := o.Do(t, "GET", "/v1/canned-responses/"+tn.canned, nil)
	s["canned "+tn.canned] = fmt.Sprintf("%d %x", cr.Status, sha256.Sum256(cr.Body))
	keep := func(id string) bool {
		return all || id == tn.victim.UserID || id == tn.owner.UserID || id == tn.invitation || id == tn.keyID || id == tn.webhook || id == tn.deadJob
	}
	list := func(path, field string, cols ...string) {
		for _, x := range o.Do(t, "GET", path, nil).Expect(t, 200).JSON(t)[field].([]any) {
			e := x.(map[string]any)
			id, _ := e["id"].(string)
			if !keep(id) {
				continue
			}
			var v []string
			for _, c := range cols {
				v = append(v, fmt.Sprint(e[c]))
			}
			s[field+" "+id] = strings.Join(v, " ")
		}
	}
	list("/v1/members", "members", "role", "status", "email")
	list("/v1/invitations", "invitations", "role", "email", "expires_at")
	list("/v1/api-keys", "api_keys", "name", "scopes", "revoked_at", "expires_at", "rate_limit_per_minute")
	list("/v1/webhooks", "webhooks", "url", "events", "enabled", "updated_at", "previous_secret_expires_at")
	jobsList := "/v1/jobs?limit=100&kind=" + matrixJobKind // A's own calls make jobs of other kinds
	if all {
		jobsList = "/v1/jobs?limit=100"
	}
	list(jobsList, "jobs", "kind", "state", "attempts", "updated_at")
	if all {
		list("/v1/contacts", "contacts", "name", "email", "version")
		list("/v1/conversations", "conversations", "status", "last_seq", "contact_id")
		list("/v1/canned-responses", "canned_responses", "code", "text")
		in := o.Do(t, "GET", "/v1/inbox/events", nil).Expect(t, 200).JSON(t)
		s["inbox cursor"] = fmt.Sprint(in["cursor"])
		st := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200)
		s["settings"] = string(bytes.TrimSpace(st.Body))
		ws := o.Do(t, "GET", "/v1/widget/settings", nil).Expect(t, 200)
		s["widget settings"] = string(bytes.TrimSpace(ws.Body))
	}
	return s
}

func diff(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	var ks []string
	for k := range before {
		ks = append(ks, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	for _, k := range ks {
		b, okb := before[k]
		a, oka := after[k]
		switch {
		case !okb:
			t.Errorf("%s: %s appeared: %s", what, k, a)
		case !oka:
			t.Errorf("%s: %s disappeared (was %s)", what, k, b)
		case a != b:
			t.Errorf("%s: %s changed: %s -> %s", what, k, b, a)
		}
	}
}

// fresh is a new session of p's person (p's fixture session stays).
func (m *matrix) fresh(t testing.TB, p *mxPrincipal) *Session {
	if p.sess == nil {
		return nil
	}
	return m.c.LoginSession(t, p.sess.Email)
}

// newPerson is a new member of the caller's role in the caller's tenant,
// signed in, for a call that changes the person's own second factors; nil
// when the caller is not a person.
func (m *matrix) newPerson(t testing.TB, x mxCase) *Session {
	if x.p.sess == nil {
		return nil
	}
	role := x.p.role
	if role == "owner" {
		role = "admin" // the routes are the same for every role; a new admin stands in for a new owner
	}
	return x.own.owner.Invite(t, role)
}

func newPassword() string {
	var b [8]byte
	rand.Read(b[:])
	return "matrix passphrase " + hex.EncodeToString(b[:])
}

// idOr is a fresh object (made by fresh) for an allowed call on the own
// tenant, which will delete or change it; otherwise the stable object.
func idOr(x mxCase, fresh func() string, stable string) string {
	if x.allowed && !x.foreign {
		return fresh()
	}
	return stable
}

// visitorRoute fills a visitor route's path with conv and msg and gives a
// valid body, so that what decides the answer is who asks for what.
func visitorRoute(method, pattern, conv, msg string) (string, any, []string) {
	path := strings.ReplaceAll(strings.ReplaceAll(pattern, "{id}", conv), "{mid}", msg)
	var body any
	var hdr []string
	switch {
	case method == "PUT":
		body = []byte("a visitor's file")
	case strings.HasSuffix(pattern, "/typing"):
		body = map[string]any{"typing": true}
	case strings.HasSuffix(pattern, "/read"):
		body = map[string]any{"seq": 1}
	case strings.HasSuffix(pattern, "/csat"):
		body = map[string]any{"rating": 5}
	case method == "POST" && strings.HasSuffix(pattern, "/messages"):
		body, hdr = map[string]any{"text": "from a visitor"}, idem()
	case method == "POST":
		body, hdr = map[string]any{"text": "hello"}, idem()
	case method == "PATCH":
		body = map[string]any{"attributes": map[string]any{"plan": "pro"}}
	case strings.HasSuffix(pattern, "/events"):
		path += "?after=0"
	}
	return path, body, hdr
}

// visitorRecipe: people, keys and anonymous callers are all refused on a
// visitor route (the cell's rule); the path names A's objects.
func visitorRecipe(method, pattern string) mxRecipe {
	return mxRecipe{build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		path, body, hdr := visitorRoute(method, pattern, x.target.conv, x.target.msg)
		return mxCall{path: path, body: body, hdr: hdr}
	}}
}

// visitorMatrix: a widget visitor of A reaches none of B's conversations
// (404, as for one that does not exist), and a visitor token of A with a
// widget token of B (or the reverse) is refused on every visitor route.
func (m *matrix) visitorMatrix(t *testing.T) {
	va, vb := m.visitor(t, m.a), m.visitor(t, m.b)
	t.Run("visitor's own", func(t *testing.T) { m.visitorOwn(t, va) })
	mixed := [][]string{
		{"Pommy-Widget", vb[1], "Pommy-Visitor", va[3]},
		{"Pommy-Widget", va[1], "Pommy-Visitor", vb[3]},
	}
	baseB := m.snapshot(t, m.b, true)
	for _, rt := range handlers.Routes() {
		if rt.Permission != "visitor" {
			continue
		}
		t.Run("visitor "+rt.Method+" "+rt.Pattern, func(t *testing.T) {
			if strings.Contains(rt.Pattern, "{id}") {
				path, body, hdr := visitorRoute(rt.Method, rt.Pattern, m.b.conv, m.b.msg)
				r := m.c.Do(t, rt.Method, path, body, append(slices.Clone(va), hdr...)...)
				m.calls++
				if r.Status != 404 || errCode(r) != "not_found" {
					t.Errorf("%s %s as tenant A's visitor with B's ids: %d %s, want 404 not_found", rt.Method, path, r.Status, trunc(r.Body))
				}
			}
			for i, h := range mixed {
				path, body, hdr := visitorRoute(rt.Method, rt.Pattern, m.a.conv, m.a.msg)
				r := m.c.Do(t, rt.Method, path, body, append(slices.Clone(h), hdr...)...)
				m.calls++
				if r.Status != 401 || errCode(r) != "visitor_token_invalid" {
					t.Errorf("%s %s with one tenant's widget token and the other's visitor token (%d): %d %s, want 401 visitor_token_invalid", rt.Method, path, i, r.Status, trunc(r.Body))
				}
				for _, sec := range m.secrets {
					if sec != "" && bytes.Contains(r.Body, []byte(sec)) {
						t.Errorf("%s %s: the response leaks tenant B's id %s", rt.Method, path, sec)
					}
				}
			}
		})
	}
	diff(t, "tenant B after A's visitor", baseB, m.snapshot(t, m.b, true))
}

// visitorOwn walks every visitor route as tenant A's visitor on their own
// conversation: each is allowed (2xx), so the matrix proves the refusals
// above are about whose objects, not a route that refuses everyone.
func (m *matrix) visitorOwn(t *testing.T, v []string) {
	do := func(method, path string, body any, status int, hdr ...string) *Response {
		t.Helper()
		m.calls++
		return m.c.Do(t, method, path, body, append(slices.Clone(v), hdr...)...).Expect(t, status)
	}
	seen := map[string]bool{}
	mark := func(method, pattern string) { seen[method+" "+pattern] = true }
	do("PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"plan": "pro"}}, 200)
	mark("PATCH", "/v1/widget/visitor")
	started := do("POST", "/v1/widget/conversations", map[string]any{"text": "hello from the matrix's visitor"}, 201, idem()...).JSON(t)
	mark("POST", "/v1/widget/conversations")
	conv := started["conversation"].(map[string]any)["id"].(string)
	base := "/v1/widget/conversations/" + conv
	do("GET", "/v1/widget/conversations", nil, 200)
	mark("GET", "/v1/widget/conversations")
	do("GET", base, nil, 200)
	mark("GET", "/v1/widget/conversations/{id}")
	do("GET", base+"/messages", nil, 200)
	mark("GET", "/v1/widget/conversations/{id}/messages")
	file := []byte("the visitor's notes\n")
	msg := do("POST", base+"/messages", map[string]any{"text": "", "attachment": map[string]any{"name": "notes.txt", "size": len(file)}}, 201, idem()...).JSON(t)["id"].(string)
	mark("POST", "/v1/widget/conversations/{id}/messages")
	do("PUT", base+"/messages/"+msg+"/attachment", file, 200)
	mark("PUT", "/v1/widget/conversations/{id}/messages/{mid}/attachment")
	if got := do("GET", base+"/messages/"+msg+"/attachment", nil, 200).Body; !bytes.Equal(got, file) {
		t.Errorf("the visitor's attachment came back as %q", got)
	}
	mark("GET", "/v1/widget/conversations/{id}/messages/{mid}/attachment")
	do("POST", base+"/typing", map[string]any{"typing": true}, 200)
	mark("POST", "/v1/widget/conversations/{id}/typing")
	do("POST", base+"/read", map[string]any{"seq": 1}, 200)
	mark("POST", "/v1/widget/conversations/{id}/read")
	do("GET", base+"/events?after=0", nil, 200)
	mark("GET", "/v1/widget/conversations/{id}/events")
	m.calls++
	m.c.Stream(t, base+"/events/stream?after=0", 1, v...).Expect(t, 200)
	mark("GET", "/v1/widget/conversations/{id}/events/stream")
	m.a.owner.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"status": "resolved"}).Expect(t, 200)
	do("POST", base+"/csat", map[string]any{"rating": 5}, 201)
	mark("POST", "/v1/widget/conversations/{id}/csat")
	for _, rt := range handlers.Routes() {
		if rt.Permission == "visitor" && !seen[rt.Method+" "+rt.Pattern] {
			t.Errorf("visitor route %s %s is not walked by the matrix's visitor (visitorOwn)", rt.Method, rt.Pattern)
		}
	}
}

// mxRecipes: one per route of handlers.Routes(), keyed "METHOD pattern".
var mxRecipes = map[string]mxRecipe{
	// The widget's public routes: the loader and the app's files, the
	// frame of A (its id in the path, which no header can change), a widget
	// token for A's allowed origin, and with it A's config and visitors.
	"GET /widget.js": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/widget.js"} }},
	"GET /widget/frame/{tenant}": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/widget/frame/" + x.own.id}
	}},
	"GET /widget/assets/{name}": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/widget/assets/app.js"} }},
	"GET /v1/widget/token": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/widget/token?tenant=" + x.own.id, hdr: []string{"Origin", x.own.widgetOrigin}}
	}},
	"GET /v1/widget/config": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/widget/config", hdr: []string{"Pommy-Widget", m.widgetToken(t, x.own)}}
	}},
	"POST /v1/widget/visitors": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/widget/visitors", body: map[string]any{}, hdr: []string{"Pommy-Widget", m.widgetToken(t, x.own)}}
	}},
	"POST /v1/widget/identify": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "matrix-user", "exp": time.Now().Add(5 * time.Minute).Unix()}).SignedString([]byte(x.own.widgetSecret))
		if err != nil {
			t.Fatal(err)
		}
		return mxCall{path: "/v1/widget/identify", body: map[string]any{"jwt": tok}, hdr: []string{"Pommy-Widget", m.widgetToken(t, x.own)}}
	}},
	"GET /v1/widget/settings": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/widget/settings"} }},
	"PATCH /v1/widget/settings": {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/widget/settings", body: map[string]any{"greeting": "matrix " + randomHex(4)}}
	}},
	"POST /v1/widget/identity-secret": {never: []string{"agent", "key"}, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/widget/identity-secret", after: func(t testing.TB, r *Response) {
			x.own.widgetSecret = r.JSON(t)["secret"].(string)
		}}
	}},
	"PATCH /v1/widget/visitor":                                    visitorRecipe("PATCH", "/v1/widget/visitor"),
	"GET /v1/widget/conversations":                                visitorRecipe("GET", "/v1/widget/conversations"),
	"POST /v1/widget/conversations":                               visitorRecipe("POST", "/v1/widget/conversations"),
	"GET /v1/widget/conversations/{id}":                           visitorRecipe("GET", "/v1/widget/conversations/{id}"),
	"GET /v1/widget/conversations/{id}/messages":                  visitorRecipe("GET", "/v1/widget/conversations/{id}/messages"),
	"POST /v1/widget/conversations/{id}/messages":                 visitorRecipe("POST", "/v1/widget/conversations/{id}/messages"),
	"PUT /v1/widget/conversations/{id}/messages/{mid}/attachment": visitorRecipe("PUT", "/v1/widget/conversations/{id}/messages/{mid}/attachment"),
	"GET /v1/widget/conversations/{id}/messages/{mid}/attachment": visitorRecipe("GET", "/v1/widget/conversations/{id}/messages/{mid}/attachment"),
	"POST /v1/widget/conversations/{id}/typing":                   visitorRecipe("POST", "/v1/widget/conversations/{id}/typing"),
	"POST /v1/widget/conversations/{id}/read":                     visitorRecipe("POST", "/v1/widget/conversations/{id}/read"),
	"POST /v1/widget/conversations/{id}/csat":                     visitorRecipe("POST", "/v1/widget/conversations/{id}/csat"),
	"GET /v1/widget/conversations/{id}/events":                    visitorRecipe("GET", "/v1/widget/conversations/{id}/events"),
	"GET /v1/widget/conversations/{id}/events/stream":             visitorRecipe("GET", "/v1/widget/conversations/{id}/events/stream"),

	"GET /healthz": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/healthz"} }},

	// Public sign-in routes start a session, ending the cookie the request
	// carried: people call them with a fresh session of their own.
	"POST /v1/signup": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/signup", as: m.fresh(t, x.p),
			body: map[string]string{"organization": "Matrix Signup", "email": randomEmail(), "password": Password}}
	}},
	// Signing in to B by naming it is refused exactly as for a tenant that
	// does not exist (403 no_membership, after the password is verified).
	"POST /v1/login": {ids: true, ok: 200, foreign: 403, foreignCode: "no_membership", build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/login", as: m.fresh(t, x.p),
			body: map[string]string{"email": x.own.victim.Email, "password": Password, "tenant": x.target.id}}
	}},
	"POST /v1/invitations/accept": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		tok := x.own.owner.Do(t, "POST", "/v1/invitations", map[string]string{"email": randomEmail(), "role": "agent"}).Expect(t, 201).JSON(t)["token"]
		return mxCall{path: "/v1/invitations/accept", as: m.fresh(t, x.p),
			body: map[string]any{"token": tok, "password": Password},
			after: func(t testing.TB, r *Response) {
				if got := r.JSON(t)["tenant"].(map[string]any)["id"]; got != x.own.id {
					t.Errorf("accepted into tenant %v, want %s", got, x.own.id)
				}
			}}
	}},

	// The account links: each allowed call follows a link of a new
	// person's own (tenant A has none to take: a link names a person, not
	// a tenant, and no B id can go in it).
	"POST /v1/email/verify": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		s, _ := m.c.SignupUnverified(t, "Matrix Verify", nil)
		return mxCall{path: "/v1/email/verify", body: map[string]string{"token": m.c.LatestLink(t, s.Email, "verify_email").Token}}
	}},
	"POST /v1/email/change/confirm": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		s := m.c.Signup(t, "Matrix Change")
		to := randomEmail()
		s.Do(t, "POST", "/v1/me/email", map[string]string{"new_email": to, "password": Password}).Expect(t, 202)
		return mxCall{path: "/v1/email/change/confirm", body: map[string]string{"token": m.c.LatestLink(t, to, "email_change").Token}}
	}},
	"POST /v1/password/forgot": {ok: 202, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/password/forgot", body: map[string]string{"email": x.own.victim.Email}}
	}},
	"POST /v1/password/reset": {ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		s := m.c.Signup(t, "Matrix Reset")
		tok := m.c.Do(t, "POST", "/__test/account-links/make", map[string]string{"email": s.Email, "purpose": "password_reset"}).Expect(t, 200).JSON(t)["token"]
		return mxCall{path: "/v1/password/reset", body: map[string]any{"token": tok, "new_password": newPassword()},
			after: func(t testing.TB, r *Response) { s.Do(t, "GET", "/v1/me", nil).Expect(t, 401) }}
	}},
	"GET /account/{page}": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/account/reset", after: func(t testing.TB, r *Response) {
			if !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") || !bytes.Contains(r.Body, []byte(`id="reset"`)) {
				t.Errorf("account page: %v %s", r.Header, trunc(r.Body))
			}
		}}
	}},
	"GET /account/assets/{name}": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/account/assets/account.js"}
	}},
	"PATCH /v1/me": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me", body: map[string]string{"locale": "en"}}
	}},
	// Each allowed call changes the address of a new person of the role
	// (the change waits for its link: nothing changes yet).
	"POST /v1/me/email": {never: []string{"key"}, ok: 202, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/email", body: map[string]string{"new_email": randomEmail(), "password": Password}}
		if x.allowed && x.p.sess != nil {
			c.as = x.own.owner.Invite(t, x.p.role)
		}
		return c
	}},
	// Every principal is verified (an invitation's link proves the
	// address): an allowed caller is told so.
	"POST /v1/email/verify/resend": {never: []string{"key"}, ok: 409, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/email/verify/resend"}
	}},
	"POST /v1/invitations/{id}/resend": {never: []string{"agent", "key"}, ids: true, ok: 202, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newInvitation(t, x.own.owner) }, x.target.invitation)
		return mxCall{path: "/v1/invitations/" + id + "/resend"}
	}},

	"POST /v1/logout": {never: []string{"key"}, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		s := m.fresh(t, x.p)
		return mxCall{path: "/v1/logout", as: s, after: func(t testing.TB, r *Response) {
			s.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
		}}
	}},
	"GET /v1/me": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me", after: func(t testing.TB, r *Response) {
			if got := r.JSON(t)["tenant"].(map[string]any)["id"]; got != x.own.id {
				t.Errorf("me: tenant %v, want %s", got, x.own.id)
			}
		}}
	}},
	// Each allowed call changes the password of a new person of the role.
	"POST /v1/me/password": {never: []string{"key"}, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/password", body: map[string]string{"current_password": Password, "new_password": newPassword()}}
		if x.allowed && x.p.sess != nil {
			c.as = x.own.owner.Invite(t, x.p.role)
		}
		return c
	}},
	// Second factors: each allowed call is made by a new person of the
	// caller's role (a factor set up on a principal would change how the
	// matrix signs them in), except step-up, which only refreshes the
	// caller's own session.
	"POST /v1/login/mfa": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		p := x.own.owner.Invite(t, "agent")
		_, codes := p.EnrolTOTP(t)
		return mxCall{path: "/v1/login/mfa", as: m.fresh(t, x.p),
			body: map[string]string{"mfa_token": m.c.PasswordStep(t, p.Email), "recovery_code": codes[0]},
			after: func(t testing.TB, r *Response) {
				if got := r.JSON(t)["user"].(map[string]any)["id"]; got != p.UserID {
					t.Errorf("signed in as %v, want %s", got, p.UserID)
				}
			}}
	}},
	"POST /v1/me/reauth": {never: []string{"key"}, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me/reauth", body: map[string]string{"password": Password}}
	}},
	"POST /v1/me/mfa/totp": {never: []string{"key"}, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/me/mfa/totp", as: m.newPerson(t, x)}
	}},
	"POST /v1/me/mfa/totp/confirm": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/mfa/totp/confirm", body: map[string]string{"code": "123456"}}
		if p := m.newPerson(t, x); p != nil {
			secret := p.Do(t, "POST", "/v1/me/mfa/totp", nil).Expect(t, 201).JSON(t)["secret"].(string)
			c.as, c.body = p, map[string]string{"code": m.c.TOTPCode(t, secret, 0)}
		}
		return c
	}},
	"DELETE /v1/me/mfa/totp": {never: []string{"key"}, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/mfa/totp"}
		if p := m.newPerson(t, x); p != nil {
			p.EnrolTOTP(t)
			c.as = p
		}
		return c
	}},
	"POST /v1/me/mfa/recovery-codes": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/me/mfa/recovery-codes"}
		if p := m.newPerson(t, x); p != nil {
			p.EnrolTOTP(t)
			c.as = p
		}
		return c
	}},
	"GET /v1/sessions": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/sessions"} }},
	"DELETE /v1/sessions/{id}": {never: []string{"key"}, ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		var s *Session
		id := idOr(x, func() string { s = m.fresh(t, x.p); return sessionID(t, s) }, x.target.victimSession)
		return mxCall{path: "/v1/sessions/" + id, after: func(t testing.TB, r *Response) {
			if s != nil {
				s.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
				// Another person's session in the same tenant is not found either.
				x.p.sess.Do(t, "DELETE", "/v1/sessions/"+x.own.victimSession, nil).Expect(t, 404)
			}
		}}
	}},
	"POST /v1/sessions/end-others": {never: []string{"key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/sessions/end-others"}
	}},

	"GET /v1/members": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/members"} }},
	"PATCH /v1/members/{id}": {never: []string{"agent", "key"}, ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return x.own.owner.Invite(t, "agent").UserID }, x.target.victim.UserID)
		return mxCall{path: "/v1/members/" + id, body: map[string]string{"role": "admin"}}
	}},
	"DELETE /v1/members/{id}": {never: []string{"agent", "key"}, ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return x.own.owner.Invite(t, "agent").UserID }, x.target.victim.UserID)
		return mxCall{path: "/v1/members/" + id}
	}},
	"POST /v1/invitations": {never: []string{"agent", "key"}, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/invitations", body: map[string]string{"email": randomEmail(), "role": "agent"}}
	}},
	"GET /v1/invitations": {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/invitations"} }},
	"DELETE /v1/invitations/{id}": {never: []string{"agent"}, ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newInvitation(t, x.own.owner) }, x.target.invitation)
		return mxCall{path: "/v1/invitations/" + id}
	}},
	// An allowed caller is a new owner (the transfer demotes the caller),
	// handing over to a new member, or naming B's member.
	"POST /v1/ownership/transfer": {never: []string{"agent", "admin", "key"}, ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/ownership/transfer"}
		to := idOr(x, func() string { return x.own.owner.Invite(t, "agent").UserID }, x.target.victim.UserID)
		c.body = map[string]string{"user_id": to}
		if x.allowed && x.p.sess != nil {
			c.as = x.own.owner.Invite(t, "owner")
		}
		return c
	}},

	"GET /v1/settings": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/settings"} }},
	"PATCH /v1/settings": {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/settings", body: map[string]any{"name": "Matrix A " + x.p.name, "session_idle_minutes": 30}}
	}},

	"GET /v1/api-keys": {never: []string{"agent", "key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/api-keys"} }},
	"POST /v1/api-keys": {never: []string{"agent", "key"}, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/api-keys", body: map[string]any{"name": "matrix", "scopes": []string{"conversations:read"}}}
	}},
	"DELETE /v1/api-keys/{id}": {never: []string{"agent", "key"}, ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		var key string
		id := idOr(x, func() string {
			k := x.own.owner.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "doomed", "scopes": []string{"conversations:read"}}).Expect(t, 201).JSON(t)
			key = k["key"].(string)
			return k["id"].(string)
		}, x.target.keyID)
		return mxCall{path: "/v1/api-keys/" + id, after: func(t testing.TB, r *Response) {
			if key != "" {
				m.c.Do(t, "GET", "/v1/canned-responses", nil, bearer(key)...).Expect(t, 401)
			}
		}}
	}},

	"GET /v1/audit/events":  {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/audit/events"} }},
	"GET /v1/audit/export":  {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/audit/export"} }},
	"GET /v1/audit/verify":  {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/audit/verify"} }},
	"GET /v1/audit/notices": {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/audit/notices"} }},
	// The mail log names people's addresses: like the audit log, never an
	// agent's nor an API key's.
	"GET /v1/mail": {never: []string{"agent", "key"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/mail"} }},

	// An allowed caller is the owner of a new tenant made for the call.
	"DELETE /v1/tenant": {never: []string{"agent", "admin", "key"}, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		c := mxCall{path: "/v1/tenant"}
		if x.allowed && x.p.sess != nil {
			s := m.c.Signup(t, "Matrix Leaving")
			c.as = s
			c.after = func(t testing.TB, r *Response) { s.Do(t, "GET", "/v1/me", nil).Expect(t, 401) }
		}
		return c
	}},

	"GET /v1/webhooks": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/webhooks"} }},
	"POST /v1/webhooks": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/webhooks", body: map[string]any{"url": "https://hooks.example.com/by-" + strings.ReplaceAll(x.p.name, " ", "-"), "events": []string{"conversation.created"}}}
	}},
	"GET /v1/webhooks/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/webhooks/" + x.target.webhook}
	}},
	"GET /v1/webhooks/{id}/deliveries": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/webhooks/" + x.target.webhook + "/deliveries"}
	}},
	"PATCH /v1/webhooks/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newWebhook(t, x.own.owner) }, x.target.webhook)
		return mxCall{path: "/v1/webhooks/" + id, body: map[string]any{"enabled": false}}
	}},
	"POST /v1/webhooks/{id}/rotate": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newWebhook(t, x.own.owner) }, x.target.webhook)
		return mxCall{path: "/v1/webhooks/" + id + "/rotate"}
	}},
	"DELETE /v1/webhooks/{id}": {ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newWebhook(t, x.own.owner) }, x.target.webhook)
		return mxCall{path: "/v1/webhooks/" + id, after: func(t testing.TB, r *Response) {
			if id != x.target.webhook {
				x.own.owner.Do(t, "GET", "/v1/webhooks/"+id, nil).Expect(t, 404)
			}
		}}
	}},
	// The chat core. Calls that change an object of their own tenant
	// change a fresh one (idOr); refused calls aim at the stable ones.
	"POST /v1/contacts": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/contacts", body: map[string]any{"name": "by " + x.p.name}}
	}},
	"GET /v1/contacts": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/contacts"} }},
	"GET /v1/contacts/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/contacts/" + x.target.contact}
	}},
	"PATCH /v1/contacts/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newContact(t, x.own.owner) }, x.target.contact)
		return mxCall{path: "/v1/contacts/" + id, body: map[string]any{"name": "changed by " + x.p.name}}
	}},
	"DELETE /v1/contacts/{id}": {ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newContact(t, x.own.owner) }, x.target.contact)
		return mxCall{path: "/v1/contacts/" + id, after: func(t testing.TB, r *Response) {
			x.own.owner.Do(t, "GET", "/v1/contacts/"+id, nil).Expect(t, 404)
		}}
	}},
	"GET /v1/contacts/{id}/conversations": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/contacts/" + x.target.contact + "/conversations"}
	}},
	"POST /v1/conversations": {ids: true, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/conversations", body: map[string]any{"contact_id": x.target.contact}}
	}},
	"GET /v1/conversations": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/conversations"} }},
	"GET /v1/conversations/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/conversations/" + x.target.conv}
	}},
	"PATCH /v1/conversations/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newConversation(t, x.own.owner, x.own.contact) }, x.target.conv)
		return mxCall{path: "/v1/conversations/" + id, body: map[string]any{"priority": "low", "add_labels": []string{"matrix"}}}
	}},
	"POST /v1/conversations/{id}/merge": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		target, source := x.target.conv, x.target.conv2
		if x.allowed && !x.foreign {
			target, source = newConversation(t, x.own.owner, x.own.contact), newConversation(t, x.own.owner, x.own.contact)
		}
		return mxCall{path: "/v1/conversations/" + target + "/merge", body: map[string]any{"source_id": source}}
	}},
	"POST /v1/conversations/{id}/read": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newConversation(t, x.own.owner, x.own.contact) }, x.target.conv)
		return mxCall{path: "/v1/conversations/" + id + "/read"}
	}},
	"POST /v1/conversations/{id}/typing": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newConversation(t, x.own.owner, x.own.contact) }, x.target.conv)
		return mxCall{path: "/v1/conversations/" + id + "/typing", body: map[string]any{"typing": true}}
	}},
	"POST /v1/conversations/{id}/messages": {ids: true, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newConversation(t, x.own.owner, x.own.contact) }, x.target.conv)
		return mxCall{path: "/v1/conversations/" + id + "/messages", body: map[string]any{"text": "by " + x.p.name}, hdr: idem()}
	}},
	"GET /v1/conversations/{id}/messages": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/conversations/" + x.target.conv + "/messages"}
	}},
	// An allowed caller attaches to a message it sent to a fresh
	// conversation (only a message's sender may attach).
	"PUT /v1/conversations/{id}/messages/{mid}/attachment": {ids: true, ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		conv, msg := x.target.conv, x.target.msg
		if x.allowed && !x.foreign {
			conv = newConversation(t, x.own.owner, x.own.contact)
			msg = m.sendAs(t, x.p, conv)
		}
		file := []byte("attached by " + x.p.name)
		return mxCall{path: attachmentPath(conv, msg), body: file, after: func(t testing.TB, r *Response) {
			if got := x.own.owner.Do(t, "GET", attachmentPath(conv, msg), nil).Expect(t, 200); !bytes.Equal(got.Body, file) {
				t.Errorf("attachment %q, want %q", got.Body, file)
			}
		}}
	}},
	"GET /v1/conversations/{id}/messages/{mid}/attachment": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: attachmentPath(x.target.conv, x.target.msg), after: func(t testing.TB, r *Response) {
			if !x.foreign && !bytes.Equal(r.Body, x.own.file) {
				t.Errorf("attachment %q, want %q", r.Body, x.own.file)
			}
		}}
	}},
	"GET /v1/conversations/{id}/events": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/conversations/" + x.target.conv + "/events"}
	}},
	"GET /v1/conversations/{id}/events/stream": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/conversations/" + x.target.conv + "/events/stream", stream: true}
	}},
	"GET /v1/inbox/events": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/inbox/events"} }},
	"GET /v1/inbox/events/stream": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/inbox/events/stream", stream: true}
	}},
	"GET /v1/canned-responses": {ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall { return mxCall{path: "/v1/canned-responses"} }},
	"POST /v1/canned-responses": {ok: 201, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/canned-responses", body: map[string]any{"code": "m-" + randomHex(6), "text": "by " + x.p.name}}
	}},
	"GET /v1/canned-responses/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/canned-responses/" + x.target.canned}
	}},
	"PATCH /v1/canned-responses/{id}": {ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newCanned(t, x.own.owner) }, x.target.canned)
		return mxCall{path: "/v1/canned-responses/" + id, body: map[string]any{"text": "changed by " + x.p.name}}
	}},
	"DELETE /v1/canned-responses/{id}": {ids: true, ok: 204, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newCanned(t, x.own.owner) }, x.target.canned)
		return mxCall{path: "/v1/canned-responses/" + id}
	}},

	// Background jobs: an allowed caller retries a fresh dead job of its
	// own tenant; refused calls aim at the stable one, which stays dead.
	"GET /v1/jobs": {never: []string{"agent"}, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		return mxCall{path: "/v1/jobs?state=dead&kind=" + matrixJobKind, after: func(t testing.TB, r *Response) {
			if !bytes.Contains(r.Body, []byte(`"id":"`+x.own.deadJob+`"`)) {
				t.Errorf("the dead jobs of tenant A lack its dead job %s: %s", x.own.deadJob, trunc(r.Body))
			}
		}}
	}},
	"POST /v1/jobs/{id}/retry": {never: []string{"agent"}, ids: true, ok: 200, build: func(t testing.TB, m *matrix, x mxCase) mxCall {
		id := idOr(x, func() string { return newDeadJob(t, m.c, x.own.id) }, x.target.deadJob)
		return mxCall{path: "/v1/jobs/" + id + "/retry", after: func(t testing.TB, r *Response) {
			if j := r.JSON(t); j["id"] != id || j["state"] != "queued" || j["attempts"] != float64(0) {
				t.Errorf("after retry: %v", j)
			}
			// A second retry is refused: the job is no longer dead.
			x.own.owner.Do(t, "POST", "/v1/jobs/"+id+"/retry", nil).Expect(t, 409)
		}}
	}},
}
