package openapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/tests/apitest"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDocumentIsValid: docs/openapi.yaml loads, resolves and validates as
// OpenAPI 3.1.
func TestDocumentIsValid(t *testing.T) {
	doc := load(t)
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi %q: the document is written for 3.1", doc.OpenAPI)
	}
}

// openAPIPath turns a ServeMux pattern into an OpenAPI path:
// "{id...}" is "{id}", and "{$}" (an exact match) is nothing.
func openAPIPath(pattern string) string {
	p := strings.ReplaceAll(pattern, "{$}", "")
	return strings.ReplaceAll(p, "...}", "}")
}

// TestEveryRouteIsDescribed: the document's operations are exactly the
// route table's routes, with the route's summary, its permission
// (x-pommy-permission), and its security: none for public routes, the
// session cookie for every other route, and a bearer API key with the
// route's scope exactly where API keys are allowed.
func TestEveryRouteIsDescribed(t *testing.T) {
	doc := load(t)
	described := map[string]bool{}
	for _, op := range Operations(doc) {
		described[op] = true
	}
	for _, rt := range handlers.Routes() {
		key := rt.Method + " " + openAPIPath(rt.Pattern)
		if !described[key] {
			t.Errorf("route %s %s (handlers/routes.go) has no operation in docs/openapi.yaml: describe it", rt.Method, rt.Pattern)
			continue
		}
		delete(described, key)
		op := doc.Paths.Find(openAPIPath(rt.Pattern)).GetOperation(rt.Method)
		if op.Summary != rt.Summary {
			t.Errorf("%s: summary %q, the route table says %q", key, op.Summary, rt.Summary)
		}
		perm, _ := op.Extensions["x-pommy-permission"].(string)
		switch {
		case rt.Public && perm != "":
			t.Errorf("%s is public, yet the document says it needs %s", key, perm)
		case !rt.Public && perm != rt.Permission:
			t.Errorf("%s: x-pommy-permission %q, the route table says %q", key, perm, rt.Permission)
		}
		if op.Security == nil {
			t.Errorf("%s: no security: say it explicitly (security: [] when public)", key)
			continue
		}
		// A widget visitor presents two credentials at once, the widget
		// token and the visitor token: one requirement naming both.
		if rt.Permission == "visitor" {
			if sec := *op.Security; len(sec) != 1 || len(sec[0]) != 2 || sec[0]["widgetToken"] == nil || sec[0]["visitorToken"] == nil {
				t.Errorf("%s: a visitor route's security is the one requirement {widgetToken, visitorToken}", key)
			}
			continue
		}
		var want []string
		if !rt.Public {
			want = append(want, "session")
			if rt.Scope != "" {
				want = append(want, "apiKey:"+rt.Scope)
			}
		}
		var got []string
		for _, req := range *op.Security {
			for name, scopes := range req {
				if len(req) != 1 {
					t.Errorf("%s: a security requirement names %d schemes; each credential alone is enough", key, len(req))
				}
				if len(scopes) > 0 {
					name += ":" + strings.Join(scopes, " ")
				}
				got = append(got, name)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: security %v, the route table says %v", key, got, want)
		}
	}
	for op := range described {
		t.Errorf("docs/openapi.yaml describes %s, which the route table (handlers.Routes) does not have", op)
	}
}

// TestDocumentConventions holds the document to the API's rules, so that a
// new operation cannot forget them: strict request bodies, the one error
// shape on every refusal, X-Request-Id on every response, Retry-After on
// every 429, and the statuses every authenticated route can give.
func TestDocumentConventions(t *testing.T) {
	doc := load(t)
	// The error shape, alone or with more to say: the organizations to
	// choose from, the second factor a sign-in awaits.
	errorRefs := []string{"#/components/schemas/Error", "#/components/schemas/TenantRequired", "#/components/schemas/MFARequired"}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			if op.OperationID == "" || len(op.Tags) == 0 {
				t.Errorf("%s: needs an operationId and a tag", key)
			}
			if op.RequestBody != nil {
				if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					strictObjects(t, key+" request body", mt.Schema, map[*openapi3.Schema]bool{})
				}
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s: no default response (the homes' own errors: 413, 503, 504, …)", key)
			}
			public := op.Security != nil && len(*op.Security) == 0
			// Only a public GET (the health check) is neither refused as
			// malformed nor counted against a limit.
			if !public || method != http.MethodGet {
				for _, status := range []string{"400", "429"} {
					if op.Responses.Value(status) == nil {
						t.Errorf("%s: no %s response", key, status)
					}
				}
			}
			if !public {
				for _, status := range []string{"401", "403"} {
					if op.Responses.Value(status) == nil {
						t.Errorf("%s: no %s response, which every authenticated route can give", key, status)
					}
				}
			}
			if strings.Contains(path, "{") && op.Responses.Value("404") == nil {
				t.Errorf("%s: names an object but has no 404 response", key)
			}
			for status, ref := range op.Responses.Map() {
				where := key + " " + status
				r := ref.Value
				if h := r.Headers["X-Request-Id"]; h == nil || !h.Value.Required {
					t.Errorf("%s: the response does not declare the required X-Request-Id header", where)
				}
				if status == "429" {
					if h := r.Headers["Retry-After"]; h == nil || !h.Value.Required {
						t.Errorf("%s: a 429 must declare the required Retry-After header", where)
					}
				}
				if status == "default" || status[0] == '4' || status[0] == '5' {
					mt := r.Content.Get("application/json")
					if len(r.Content) != 1 || mt == nil || mt.Schema == nil || !errorShape(mt.Schema, errorRefs) {
						t.Errorf("%s: an error response must be application/json with the one error shape (components/schemas/Error)", where)
					}
				}
			}
		}
	}
}

// errorShape: the schema is one of refs, or a oneOf of them only.
func errorShape(s *openapi3.SchemaRef, refs []string) bool {
	if s.Ref != "" || s.Value == nil || len(s.Value.OneOf) == 0 {
		return slices.Contains(refs, s.Ref)
	}
	for _, sub := range s.Value.OneOf {
		if !slices.Contains(refs, sub.Ref) {
			return false
		}
	}
	return true
}

// strictObjects fails t for any object in a request schema that takes
// keys it does not name: the server refuses them (400 unknown_field).
func strictObjects(t *testing.T, where string, ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	t.Helper()
	s := ref.Value
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	// A map whose values have a schema (a contact's attributes) names
	// what it takes too.
	if s.Type.Is("object") && s.AdditionalProperties.Schema == nil {
		if ap := s.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("%s: an object schema without additionalProperties: false (the server refuses unknown keys)", where)
		}
	}
	for name, p := range s.Properties {
		strictObjects(t, where+"."+name, p, seen)
	}
	if s.Items != nil {
		strictObjects(t, where+"[]", s.Items, seen)
	}
	for _, list := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf, s.AllOf} {
		for _, sub := range list {
			strictObjects(t, where, sub, seen)
		}
	}
}

// TestScopesAreTheKeyScopes: the scopes an API key may be given are the
// ones the document lists (apitest.AllScopes is every one of them), a key
// may be given all of them, and every route's scope is among them.
func TestScopesAreTheKeyScopes(t *testing.T) {
	doc := load(t)
	var enum []string
	for _, v := range doc.Components.Schemas["Scope"].Value.Enum {
		s, _ := v.(string)
		enum = append(enum, s)
	}
	all := slices.Clone(apitest.AllScopes)
	slices.Sort(enum)
	slices.Sort(all)
	if !slices.Equal(enum, all) {
		t.Errorf("components/schemas/Scope lists %v; the API key scopes are %v", enum, all)
	}
	// The server takes a list of at most as many entries as there are scopes.
	if max := doc.Components.Schemas["APIKeyRequest"].Value.Properties["scopes"].Value.MaxItems; max == nil || *max != uint64(len(all)) {
		t.Errorf("APIKeyRequest.scopes: maxItems %v; the server takes up to %d scopes", max, len(all))
	}
	for _, rt := range handlers.Routes() {
		if rt.Scope != "" && !slices.Contains(enum, rt.Scope) {
			t.Errorf("%s %s needs scope %s, which components/schemas/Scope lacks", rt.Method, rt.Pattern, rt.Scope)
		}
	}
}

// recorder is a testing.TB that keeps the failures reported to it.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
}

func exchange(t *testing.T, method, path, body string, reqHeader []string, status int, respHeader []string, respBody string) *apitest.Exchange {
	t.Helper()
	req, err := http.NewRequest(method, "http://127.0.0.1:1"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(reqHeader); i += 2 {
		req.Header.Add(reqHeader[i], reqHeader[i+1])
	}
	h := http.Header{}
	for i := 0; i+1 < len(respHeader); i += 2 {
		h.Add(respHeader[i], respHeader[i+1])
	}
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return &apitest.Exchange{Request: req, RequestBody: b, Response: &apitest.Response{Status: status, Header: h, Body: []byte(respBody)}}
}

// TestValidatorCanFail: the validator passes a conforming exchange and
// reports each kind of departure from the document, through Check as a
// test failure.
func TestValidatorCanFail(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const (
		tenant  = "t_aaaaaaaaaaaaaaaaaaaaaaaaaa"
		user    = "u_aaaaaaaaaaaaaaaaaaaaaaaaaa"
		session = "s_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	)
	cookie := []string{"Cookie", "__Host-pommy_session=tok", "Sec-Fetch-Site", "same-origin"}
	key := []string{"Authorization", "Bearer pk_live_x"}
	jsonOut := []string{"Content-Type", "application/json; charset=utf-8", "X-Request-Id", "abcdefgh12"}
	me := `{"user":{"id":"` + user + `","email":"a@example.com","name":"","role":"owner"},"tenant":{"id":"` + tenant + `","name":"Acme"},"session":{"id":"` + session + `","auth_methods":["password"],"reauth_at":"2026-01-02T03:04:05Z"},` +
		`"mfa":{"totp":false,"passkeys":0,"recovery_codes_left":0},"mfa_enrolment_required":false}`
	refused := `{"error":{"code":"unknown_field","message":"request body refused at colour: unknown","field":"colour"}}`
	settings := `{"name":"Acme","session_idle_minutes":30,"session_absolute_minutes":720,"audit_retention_days":365,"rate_limit_per_minute":6000,"mfa_required":"off","security_notices_to_owners":true}`

	good := []struct {
		name string
		x    *apitest.Exchange
	}{
		{"me", exchange(t, "GET", "/v1/me", "", cookie, 200, jsonOut, me)},
		{"an error for an unknown path", exchange(t, "GET", "/v1/nothing", "", nil, 404, jsonOut, `{"error":{"code":"not_found","message":"no route"}}`)},
		{"a refused unknown key", exchange(t, "PATCH", "/v1/settings", `{"colour":"red"}`, append(key, "Content-Type", "application/json"), 400, jsonOut, refused)},
		{"settings by API key", exchange(t, "PATCH", "/v1/settings", `{"name":"Acme"}`, append(key, "Content-Type", "application/json"), 200, jsonOut, settings)},
		{"a test route", exchange(t, "GET", "/__test/anything", "", nil, 200, nil, "not json")},
	}
	for _, tc := range good {
		if p := v.Problems(tc.x); len(p) != 0 {
			t.Errorf("%s: a conforming exchange was reported: %v", tc.name, p)
		}
	}

	bad := []struct {
		name, want string
		x          *apitest.Exchange
	}{
		{"an undocumented response field", "does not match",
			exchange(t, "GET", "/v1/me", "", cookie, 200, jsonOut, strings.Replace(me, `"role":"owner"`, `"role":"owner","admin":true`, 1))},
		{"a missing required field", "does not match",
			exchange(t, "GET", "/v1/me", "", cookie, 200, jsonOut, strings.Replace(me, `"email":"a@example.com",`, ``, 1))},
		{"a value outside its enum", "does not match",
			exchange(t, "GET", "/v1/me", "", cookie, 200, jsonOut, strings.Replace(me, `"owner"`, `"superuser"`, 1))},
		{"no X-Request-Id", "X-Request-Id",
			exchange(t, "GET", "/v1/me", "", cookie, 200, []string{"Content-Type", "application/json"}, me)},
		{"an error not in the error shape", "does not match",
			exchange(t, "GET", "/v1/me", "", cookie, 403, jsonOut, `{"message":"no"}`)},
		{"a 429 without Retry-After", "Retry-After",
			exchange(t, "GET", "/v1/me", "", cookie, 429, jsonOut, `{"error":{"code":"rate_limited","message":"slow down"}}`)},
		{"an undocumented success status (judged as an error by default)", "does not match",
			exchange(t, "GET", "/v1/me", "", cookie, 201, jsonOut, me)},
		{"accepted without a credential the document requires", "accepted a request the document refuses",
			exchange(t, "GET", "/v1/me", "", nil, 200, jsonOut, me)},
		{"accepted with a body the document refuses", "accepted a request the document refuses",
			exchange(t, "PATCH", "/v1/settings", `{"session_idle_minutes":1}`, append(key, "Content-Type", "application/json"), 200, jsonOut, settings)},
		{"a document more lenient than the server", "additionalProperties",
			exchange(t, "PATCH", "/v1/settings", `{"name":"Acme"}`, append(key, "Content-Type", "application/json"), 400, jsonOut, refused)},
		{"an undocumented path answering 2xx", "no operation",
			exchange(t, "GET", "/v1/secret-admin", "", nil, 200, jsonOut, `{}`)},
		{"an unknown path answering HTML", "Content-Type",
			exchange(t, "GET", "/v1/nothing", "", nil, 404, []string{"Content-Type", "text/html", "X-Request-Id", "abcdefgh12"}, `<a>moved</a>`)},
		{"a bad NDJSON line", "NDJSON line 2",
			exchange(t, "GET", "/v1/audit/export", "", cookie, 200, []string{"Content-Type", "application/x-ndjson", "X-Request-Id", "abcdefgh12",
				"Content-Disposition", `attachment; filename="audit.ndjson"`}, auditLine(1)+"\n"+`{"seq":"two"}`+"\n")},
	}
	for _, tc := range bad {
		p := v.Problems(tc.x)
		if !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: reported %q, want a problem mentioning %q", tc.name, p, tc.want)
		}
		r := &recorder{TB: t}
		v.Check(r, tc.x)
		if len(r.errors) == 0 {
			t.Errorf("%s: Check did not fail the test", tc.name)
		}
	}
	// SSE frames: a good one passes; bad data, or a frame that is not one,
	// is reported.
	sse := []string{"Content-Type", "text/event-stream", "X-Request-Id", "abcdefgh12"}
	ev := `{"seq":4,"type":"typing","conversation_id":"c_aaaaaaaaaaaaaaaaaaaaaaaaaa","at":"2026-01-02T03:04:05Z","data":{"typing":true}}`
	stream := "/v1/conversations/c_aaaaaaaaaaaaaaaaaaaaaaaaaa/events/stream"
	if p := v.Problems(exchange(t, "GET", stream, "", cookie, 200, sse, "id: 4\nevent: typing\ndata: "+ev+"\n\nevent: ping\ndata: {\"t\":1}\n\n")); len(p) != 0 {
		t.Errorf("a conforming stream was reported: %v", p)
	}
	for name, body := range map[string]string{
		"an event of an unknown type": "id: 4\nevent: typing\ndata: " + strings.Replace(ev, `"typing"`, `"dancing"`, 1) + "\n\n",
		"a frame without data":        "id: 4\nevent: typing\n\n",
		"ids that go back":            "id: 4\nevent: typing\ndata: " + ev + "\n\nid: 3\nevent: typing\ndata: " + ev + "\n\n",
	} {
		if p := v.Problems(exchange(t, "GET", stream, "", cookie, 200, sse, body)); !strings.Contains(strings.Join(p, " "), "SSE frame") {
			t.Errorf("%s: reported %q", name, p)
		}
	}

	// A good export line passes: the NDJSON check is not failing everything.
	x := exchange(t, "GET", "/v1/audit/export", "", cookie, 200, []string{"Content-Type", "application/x-ndjson", "X-Request-Id", "abcdefgh12",
		"Content-Disposition", `attachment; filename="audit.ndjson"`}, auditLine(1)+"\n"+auditLine(2)+"\n")
	if p := v.Problems(x); len(p) != 0 {
		t.Errorf("a conforming export was reported: %v", p)
	}
}

func auditLine(seq int) string {
	h := strings.Repeat("ab", 32)
	return `{"seq":` + strconv.Itoa(seq) + `,"at":"2026-01-02T03:04:05.678Z","at_ms":1767323045678,"tenant_id":"t_aaaaaaaaaaaaaaaaaaaaaaaaaa",` +
		`"actor_type":"user","actor_id":"u_aaaaaaaaaaaaaaaaaaaaaaaaaa","action":"auth.login.succeeded","target":"user:u_a","ip":"10.0.0.1",` +
		`"user_agent":"go","request_id":"abcdefgh12","details":{"country":"NL"},"prev_hash":"` + h + `","hash":"` + h + `"}`
}

// TestCoverageCanFail: an operation no exchange saw answer 2xx is reported.
func TestCoverageCanFail(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	v.RequireCoverage(r)
	if len(r.errors) != len(Operations(v.doc)) {
		t.Errorf("with no exchange, %d operations reported; want all %d", len(r.errors), len(Operations(v.doc)))
	}
}
