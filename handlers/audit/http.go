package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The HTTP handlers below are not mounted by this package. The route table
// mounts them for owners and admins only (docs/audit.md, "Routes"):
//
//	GET /v1/audit/events   QueryHandler   JSON page of events, newest first
//	GET /v1/audit/export   ExportHandler  NDJSON of all matching events
//	GET /v1/audit/verify   VerifyHandler  verification Report as JSON
//	GET /v1/audit/notices  NoticesHandler security notices
//
// Each takes the authenticated caller as an Event template (TenantID,
// ActorType, ActorID, IP, UserAgent, RequestID set; the tenant is the
// caller's own, never taken from the request). A handler writes its own
// 4xx responses, as {"error":{"code","message"}}, and returns nil for them;
// it returns an error only for a storage or internal fault, before anything
// was written, for the router's error writer to report as 5xx.

// HandlerFunc is the shape of the audit routes.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, by Event) error

var filterParams = map[string]bool{"action": true, "actor_id": true, "target": true, "since": true, "until": true, "limit": true, "cursor": true}

// ParseFilter reads a Filter from query parameters: action (prefix),
// actor_id, target, since and until (RFC 3339, or Unix milliseconds),
// limit, cursor. Unknown parameters are refused so that typos fail loudly.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	for k, v := range q {
		if !filterParams[k] {
			return f, fmt.Errorf("%w: unknown parameter %q", ErrBadFilter, k)
		}
		if len(v) != 1 {
			return f, fmt.Errorf("%w: parameter %q given %d times", ErrBadFilter, k, len(v))
		}
	}
	f.Action, f.ActorID, f.Target, f.Cursor = q.Get("action"), q.Get("actor_id"), q.Get("target"), q.Get("cursor")
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		s := q.Get(p.name)
		if s == "" {
			continue
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			*p.dst = time.UnixMilli(ms).UTC()
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, fmt.Errorf("%w: %s must be RFC 3339 or Unix milliseconds", ErrBadFilter, p.name)
		}
		*p.dst = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return f, fmt.Errorf("%w: limit must be 1 to %d", ErrBadFilter, MaxLimit)
		}
		f.Limit = n
	}
	if _, _, err := f.where(""); err != nil {
		return f, err
	}
	return f, nil
}

// writeJSON writes v as the application's writer does: <, > and & as
// themselves, not \u003c….
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	newEncoder(w).Encode(v)
}

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

func writeErr(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]map[string]string{"error": {"code": code, "message": message}})
}

// badRequest writes a 400 for filter errors and reports whether err was one.
func badRequest(w http.ResponseWriter, err error) bool {
	if errors.Is(err, ErrBadFilter) {
		writeErr(w, http.StatusBadRequest, "invalid_filter", strings.TrimPrefix(err.Error(), "audit: "))
		return true
	}
	return false
}

func checkCaller(w http.ResponseWriter, by Event) bool {
	if by.TenantID == "" {
		writeErr(w, http.StatusUnauthorized, "unauthenticated", "no tenant for this caller")
		return false
	}
	return true
}

// QueryHandler serves GET /v1/audit/events.
func QueryHandler(l *Log) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, by Event) error {
		if !checkCaller(w, by) {
			return nil
		}
		f, err := ParseFilter(r.URL.Query())
		if badRequest(w, err) {
			return nil
		}
		p, err := l.Query(r.Context(), by.TenantID, f)
		if badRequest(w, err) {
			return nil
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	}
}

// ExportHandler serves GET /v1/audit/export as application/x-ndjson. The
// export is itself recorded ("audit.exported") before any data is sent. A
// failure after the first byte cannot change the status any more: the
// stream then ends with an {"error":{...}} line, which a reader must treat
// as a failed export.
func ExportHandler(l *Log) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, by Event) error {
		if !checkCaller(w, by) {
			return nil
		}
		f, err := ParseFilter(r.URL.Query())
		if badRequest(w, err) {
			return nil
		}
		rec := by
		rec.Action, rec.Target = ActionExported, "audit_events"
		rec.Details = map[string]string{"filter": r.URL.RawQuery}
		if err := l.Record(r.Context(), rec); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="audit-`+by.TenantID+`.ndjson"`)
		w.WriteHeader(http.StatusOK)
		if _, err := l.Export(r.Context(), by.TenantID, f, w); err != nil {
			newEncoder(w).Encode(map[string]map[string]string{"error": {"code": "internal", "message": "export interrupted; it is incomplete"}})
		}
		return nil
	}
}

// VerifyHandler serves GET /v1/audit/verify: 200 with the Report whether
// or not the chain is intact (check "ok").
func VerifyHandler(l *Log) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, by Event) error {
		if !checkCaller(w, by) {
			return nil
		}
		if len(r.URL.Query()) > 0 {
			writeErr(w, http.StatusBadRequest, "invalid_filter", "verify takes no parameters")
			return nil
		}
		rep, err := l.Verify(r.Context(), by.TenantID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rep)
		return nil
	}
}

// NoticesHandler serves GET /v1/audit/notices (?limit=1..100).
func NoticesHandler(l *Log) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, by Event) error {
		if !checkCaller(w, by) {
			return nil
		}
		limit := 50
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 100 {
				writeErr(w, http.StatusBadRequest, "invalid_filter", "limit must be 1 to 100")
				return nil
			}
			limit = n
		}
		ns, err := l.Notices(r.Context(), by.TenantID, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"notices": ns})
		return nil
	}
}
