// Package openapi holds the API to its description, docs/openapi.yaml. Its
// tests check that the document is valid OpenAPI and describes exactly the
// route table (handlers.Routes); its Validator, set as an apitest.Checker,
// checks every request and response of the acceptance suite against the
// document with kin-openapi's openapi3filter.
//
// A request the document refuses is a failure only when the server
// accepted it (2xx): the suite sends malformed and unknown-key bodies on
// purpose, and a server that refuses what the document refuses agrees with
// it. Conversely, a body the document accepts but the server refuses as
// unknown_field means the document lacks additionalProperties: false.
// Every response is validated, refusals included, against the operation's
// responses (status, headers, body); a response to a path the document does
// not have must still be an error in the one error shape.
//
// kin-openapi is a test dependency only: nothing outside tests/ imports this
// package, and tests/shipped checks that no shipped program links it.
package openapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"pommy.ai/edge/tests/apitest"
)

// Path is where the document is: docs/ of the module holding the working
// directory (a test runs in its package's folder), so that any test
// package can load it. Not from runtime.Caller: builds with -trimpath
// (make test) record module paths, not folders.
func Path() string {
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("docs", "openapi.yaml")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs", "openapi.yaml")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("docs", "openapi.yaml")
		}
		dir = parent
	}
}

// Load reads and validates the document.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(Path())
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", Path(), err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError()); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", Path(), err)
	}
	return doc, nil
}

// visit are the options of the validator's own schema checks, as
// openapi3filter sets them for an OpenAPI 3.1 document.
var visit = []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020(), openapi3.MultiErrors(),
	openapi3.SetSchemaErrorMessageCustomizer(schemaError)}

// testOnly are the path prefixes of test builds' routes, which are not
// part of the API.
var testOnly = []string{"/__test/", "/__contract/"}

// Validator checks exchanges against the document. It is safe for
// concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router

	mu sync.Mutex
	// checked counts the exchanges checked against the document.
	checked int
	// ok holds the operations ("GET /v1/notes/{id}") seen answering 2xx.
	ok map[string]bool
}

// New loads the document and returns its validator.
func New() (*Validator, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	// The router matches requests to operations by path alone: the
	// document's servers name real hosts, the tests' homes listen on
	// loopback ports.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Validator{doc: doc, router: router, ok: map[string]bool{}}, nil
}

// Attach makes c check every exchange against the document and returns the
// validator.
func Attach(t testing.TB, c *apitest.Client) *Validator {
	t.Helper()
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c.Check = v
	return v
}

// Check implements apitest.Checker: it fails t with every way the exchange
// departs from the document.
func (v *Validator) Check(t testing.TB, x *apitest.Exchange) {
	t.Helper()
	for _, p := range v.Problems(x) {
		t.Errorf("openapi: %s %s -> %d: %s", x.Request.Method, x.Request.URL.RequestURI(), x.Response.Status, p)
	}
}

// RequireCoverage fails t for every operation of the document that no
// checked exchange saw answer 2xx: its success response was never held to
// the document. The acceptance suite exercises every route (the
// cross-tenant matrix has a recipe for each), so after a full run none is
// missing.
func (v *Validator) RequireCoverage(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	t.Logf("openapi: %d exchanges checked against docs/openapi.yaml", v.checked)
	v.mu.Unlock()
	for _, op := range Operations(v.doc) {
		v.mu.Lock()
		seen := v.ok[op]
		v.mu.Unlock()
		if !seen {
			t.Errorf("openapi: %s never answered 2xx in this run, so its success response was not checked against docs/openapi.yaml", op)
		}
	}
}

// Operations lists the document's operations as "METHOD path".
func Operations(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// Problems returns the ways the exchange departs from the document (none
// when it conforms).
func (v *Validator) Problems(x *apitest.Exchange) []string {
	req, resp := x.Request, x.Response
	for _, p := range testOnly {
		if strings.HasPrefix(req.URL.Path, p) {
			return nil
		}
	}
	vr := req.Clone(context.Background())
	body := x.RequestBody
	vr.Body = io.NopCloser(bytes.NewReader(body))
	vr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	vr.ContentLength = int64(len(body))
	if len(body) == 0 {
		vr.Body, vr.GetBody = http.NoBody, nil
	}
	v.mu.Lock()
	v.checked++
	v.mu.Unlock()
	route, params, err := v.router.FindRoute(vr)
	if err != nil {
		// Dot segments are resolved by every home before routing
		// (handlers/paths.go); resolve them here too.
		if clean := resolveDots(req.URL.Path); clean != req.URL.Path {
			u := *vr.URL
			u.Path, u.RawPath = clean, ""
			vr.URL = &u
			route, params, err = v.router.FindRoute(vr)
		}
	}
	if err != nil {
		return v.undocumented(resp, err)
	}

	var problems []string
	inOpts := &openapi3filter.Options{
		MultiError:                        true,
		RejectWhenRequestBodyNotSpecified: true,
		AuthenticationFunc:                credentialPresent,
	}
	inOpts.WithCustomSchemaErrorFunc(schemaError)
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: inOpts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	accepted := resp.Status >= 200 && resp.Status <= 299
	if reqErr != nil && accepted {
		problems = append(problems, "the server accepted a request the document refuses: "+oneLine(reqErr))
	}
	if reqErr == nil && resp.Status == http.StatusBadRequest {
		if e := errorOf(resp.Body); e.Code == "unknown_field" {
			problems = append(problems, fmt.Sprintf("the document accepts the body the server refused for its unknown field %q: the request schema needs additionalProperties: false", e.Field))
		}
	}

	outOpts := &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}
	outOpts.WithCustomSchemaErrorFunc(schemaError)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.Status,
		Header:                 resp.Header,
		Options:                outOpts,
	}
	// openapi3filter has no decoder for NDJSON or SSE: it checks the
	// status and headers, and each line or frame is checked below.
	lines := v.ndjsonLines
	switch mediaType(resp.Header.Get("Content-Type")) {
	case "text/event-stream":
		lines = v.sseFrames
	case "application/x-ndjson":
	default:
		lines = nil
	}
	out.Options.ExcludeResponseBody = lines != nil
	out.SetBodyBytes(resp.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		problems = append(problems, "the response does not match the document: "+oneLine(err))
	}
	if lines != nil {
		problems = append(problems, lines(route, resp)...)
	}
	if accepted && len(problems) == 0 {
		v.mu.Lock()
		v.ok[route.Method+" "+route.Path] = true
		v.mu.Unlock()
	}
	return problems
}

// undocumented judges a response to a request that matches no operation:
// it must be a refusal in the one error shape, with a request id.
func (v *Validator) undocumented(resp *apitest.Response, why error) []string {
	var problems []string
	if resp.Status < 400 {
		problems = append(problems, fmt.Sprintf("no operation in the document matches (%v), yet the server answered %d", why, resp.Status))
	}
	if resp.Header.Get("X-Request-Id") == "" {
		problems = append(problems, "no X-Request-Id")
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return append(problems, fmt.Sprintf("an error with Content-Type %q, not application/json", mt))
	}
	var body any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return append(problems, "an error body that is not JSON: "+err.Error())
	}
	if err := v.doc.Components.Schemas["Error"].Value.VisitJSON(body, visit...); err != nil {
		problems = append(problems, "an error body not in the one error shape: "+oneLine(err))
	}
	return problems
}

// bodySchema is the schema of the operation's response for the status and
// media type, or nil.
func bodySchema(route *routers.Route, status int, media string) *openapi3.Schema {
	ref := route.Operation.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return nil // reported by ValidateResponse
	}
	mt := ref.Value.Content.Get(media)
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// sseFrames validates the data of each Server-Sent Events frame (the
// frames read: a held stream never ends) against the schema of the
// operation's response, and each frame's form: an id that grows, an
// event name, one line of JSON data.
func (v *Validator) sseFrames(route *routers.Route, resp *apitest.Response) []string {
	schema := bodySchema(route, resp.Status, "text/event-stream")
	if schema == nil {
		return nil
	}
	var problems []string
	last := int64(-1)
	// Only whole frames: a reader of a held stream stops after some, maybe
	// inside the next one.
	body := string(resp.Body)
	if i := strings.LastIndex(body, "\n\n"); i >= 0 {
		body = body[:i]
	} else {
		body = ""
	}
	for n, frame := range strings.Split(body, "\n\n") {
		if frame == "" {
			continue
		}
		fields := map[string]string{}
		for _, line := range strings.Split(frame, "\n") {
			k, val, ok := strings.Cut(line, ": ")
			if _, dup := fields[k]; !ok || dup {
				problems = append(problems, fmt.Sprintf("SSE frame %d: line %q is not one \"field: value\"", n+1, line))
				continue
			}
			fields[k] = val
		}
		if fields["event"] == "" {
			problems = append(problems, fmt.Sprintf("SSE frame %d has no event name", n+1))
		}
		if id, ok := fields["id"]; ok {
			seq, err := strconv.ParseInt(id, 10, 64)
			if err != nil || seq <= last {
				problems = append(problems, fmt.Sprintf("SSE frame %d: id %q does not follow %d", n+1, id, last))
			}
			last = seq
		}
		var data any
		if err := json.Unmarshal([]byte(fields["data"]), &data); err != nil {
			problems = append(problems, fmt.Sprintf("SSE frame %d: data is not JSON: %v", n+1, err))
			continue
		}
		if err := schema.VisitJSON(data, visit...); err != nil {
			problems = append(problems, fmt.Sprintf("SSE frame %d (%s) does not match the document: %s", n+1, fields["event"], oneLine(err)))
		}
	}
	return problems
}

// ndjsonLines validates each line of an NDJSON body against the schema of
// the operation's response for its status.
func (v *Validator) ndjsonLines(route *routers.Route, resp *apitest.Response) []string {
	schema := bodySchema(route, resp.Status, "application/x-ndjson")
	if schema == nil {
		return nil
	}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(resp.Body))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var line any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			problems = append(problems, fmt.Sprintf("NDJSON line %d is not JSON: %v", n, err))
			continue
		}
		if err := schema.VisitJSON(line, visit...); err != nil {
			problems = append(problems, fmt.Sprintf("NDJSON line %d does not match the document: %s", n, oneLine(err)))
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, "reading the NDJSON body: "+err.Error())
	}
	return problems
}

// credentialPresent is the document's security as a client sees it: a
// requirement is met when the request carries that credential (whether
// the server takes it is the server's business, and answered by its
// status).
func credentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "apiKey" && s.In == "cookie":
		if c, err := r.Cookie(s.Name); err == nil && c.Value != "" {
			return nil
		}
	case s.Type == "apiKey" && s.In == "header":
		if strings.TrimSpace(r.Header.Get(s.Name)) != "" {
			return nil
		}
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if strings.EqualFold(scheme, "bearer") && strings.TrimSpace(cred) != "" {
			return nil
		}
	default:
		return in.NewError(fmt.Errorf("the validator does not know security scheme %q", in.SecuritySchemeName))
	}
	return in.NewError(fmt.Errorf("no %s credential", in.SecuritySchemeName))
}

// resolveDots removes dot segments the way a URL parser does.
func resolveDots(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	return (&url.URL{Path: "/"}).ResolveReference(&url.URL{Path: p}).Path
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

type errorDetail struct{ Code, Field string }

func errorOf(body []byte) errorDetail {
	var b struct{ Error errorDetail }
	json.Unmarshal(body, &b)
	return b.Error
}

// schemaError says where a value broke its schema and why, without the
// schema and value dumps kin-openapi adds by default.
func schemaError(err *openapi3.SchemaError) string {
	at := "/" + strings.Join(err.JSONPointer(), "/")
	return fmt.Sprintf("at %s: %s", at, err.Reason)
}

// oneLine flattens kin-openapi's multi-line errors for a test log.
func oneLine(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		parts := make([]string, 0, len(me))
		for _, e := range me {
			parts = append(parts, oneLine(e))
		}
		return strings.Join(parts, "; ")
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
