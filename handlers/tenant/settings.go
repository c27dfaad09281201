// Package tenant is the organization itself: its settings (name, session
// timeouts, audit retention, request rate, the MFA policy), the request rate every
// authenticated request counts against, and its deletion, which destroys
// its data key first (crypto-shredding) and then every capability's rows.
package tenant

import (
	"errors"
	"net/http"
	"reflect"
	"strings"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Service is the tenant capability bound to a home's platform.
type Service struct {
	p storage.Platform
	// purge are the capabilities' statements that delete a tenant's rows,
	// in the order they run; the tenants row goes last.
	purge []func(tenant string) []storage.Stmt
	// endSession clears the deleting person's session cookie.
	endSession func(http.ResponseWriter)
}

// New returns the tenant capability. endSession clears the caller's
// session cookie when their organization is deleted; purge lists, for each
// capability that stores rows of a tenant, the statements that delete
// them (a capability added later adds its own here, in the route table's
// package, so a deleted tenant leaves no rows behind).
func New(p storage.Platform, endSession func(http.ResponseWriter), purge ...func(tenant string) []storage.Stmt) *Service {
	return &Service{p: p, purge: purge, endSession: endSession}
}

// bodyLimit is the largest settings body.
const bodyLimit = 8 << 10

type settings struct {
	Name                   string `json:"name"`
	SessionIdleMinutes     int64  `json:"session_idle_minutes"`
	SessionAbsoluteMinutes int64  `json:"session_absolute_minutes"`
	// AuditRetentionDays lives with the audit log (audit_settings); it can
	// only be raised, never below 90 days.
	AuditRetentionDays int `json:"audit_retention_days"`
	// RateLimitPerMinute is the organization's request rate (rate.go).
	RateLimitPerMinute int64 `json:"rate_limit_per_minute"`
	// MFARequired is who must sign in with a second factor: "off",
	// "admins" (owners and admins) or "everyone".
	MFARequired string `json:"mfa_required"`
	// SecurityNoticesToOwners: the audit log's security notices about a
	// member are mailed to the owners too, not only to that member.
	SecurityNoticesToOwners bool `json:"security_notices_to_owners"`
}

func (svc *Service) loadSettings(r *http.Request, s *web.Scope) (*settings, error) {
	// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT name, session_idle_minutes, session_absolute_minutes, rate_limit_per_minute, mfa_required, notices_to_owners FROM tenants WHERE id = ?`, s.Tenant)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, storage.ErrNotFound
	}
	var st settings
	var toOwners int64
	if err := rows.Scan(0, &st.Name, &st.SessionIdleMinutes, &st.SessionAbsoluteMinutes, &st.RateLimitPerMinute, &st.MFARequired, &toOwners); err != nil {
		return nil, err
	}
	st.SecurityNoticesToOwners = toOwners != 0
	st.AuditRetentionDays, err = web.AuditLog(svc.p).Retention(r.Context(), s.Tenant)
	return &st, err
}

func (svc *Service) GetSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	st, err := svc.loadSettings(r, s)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, st)
	return nil
}

type settingsUpdate struct {
	Name                    *string `json:"name"`
	SessionIdleMinutes      *int64  `json:"session_idle_minutes"`
	SessionAbsoluteMinutes  *int64  `json:"session_absolute_minutes"`
	AuditRetentionDays      *int    `json:"audit_retention_days"`
	RateLimitPerMinute      *int64  `json:"rate_limit_per_minute"`
	MFARequired             *string `json:"mfa_required"`
	SecurityNoticesToOwners *bool   `json:"security_notices_to_owners"`
}

func (svc *Service) UpdateSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req settingsUpdate
	if err := web.DecodeJSON(w, r, bodyLimit, &req); err != nil {
		return err
	}
	st, err := svc.loadSettings(r, s)
	if err != nil {
		return err
	}
	old := *st
	if req.Name != nil {
		if st.Name, err = web.CheckName("name", *req.Name, true, 100); err != nil {
			return err
		}
	}
	if v := req.SessionIdleMinutes; v != nil {
		if *v < minIdleMinutes || *v > maxIdleMinutes {
			return web.Errorf(http.StatusBadRequest, "invalid_session_idle_minutes", "session_idle_minutes must be %d to %d", minIdleMinutes, maxIdleMinutes)
		}
		st.SessionIdleMinutes = *v
	}
	if v := req.SessionAbsoluteMinutes; v != nil {
		if *v < minAbsoluteMinutes || *v > maxAbsoluteMinutes {
			return web.Errorf(http.StatusBadRequest, "invalid_session_absolute_minutes", "session_absolute_minutes must be %d to %d", minAbsoluteMinutes, maxAbsoluteMinutes)
		}
		st.SessionAbsoluteMinutes = *v
	}
	if v := req.RateLimitPerMinute; v != nil {
		if err := checkTenantRate(*v); err != nil {
			return err
		}
		st.RateLimitPerMinute = *v
	}
	if v := req.MFARequired; v != nil {
		switch *v {
		case "off", "admins", "everyone":
			st.MFARequired = *v
		default:
			return web.Errorf(http.StatusBadRequest, "invalid_mfa_required", `mfa_required must be "off", "admins" (owners and admins) or "everyone"`)
		}
	}
	if v := req.SecurityNoticesToOwners; v != nil {
		st.SecurityNoticesToOwners = *v
	}
	if st.SessionIdleMinutes > st.SessionAbsoluteMinutes {
		return web.Errorf(http.StatusBadRequest, "invalid_session_idle_minutes", "the idle timeout cannot exceed the absolute timeout")
	}
	if v := req.AuditRetentionDays; v != nil && *v != st.AuditRetentionDays {
		typ, id := s.Actor()
		by := audit.Event{ActorType: typ, ActorID: id, IP: web.ClientIP(r), UserAgent: web.UserAgent(r), RequestID: web.RequestID(r)}
		switch err := web.AuditLog(svc.p).SetRetention(r.Context(), s.Tenant, *v, by); {
		case errors.Is(err, audit.ErrRetentionTooShort), errors.Is(err, audit.ErrRetentionTooLong), errors.Is(err, audit.ErrRetentionLowered):
			return web.Errorf(http.StatusBadRequest, "invalid_audit_retention_days", "audit_retention_days must be %d to %d and can only be raised (now %d)", audit.MinRetentionDays, audit.MaxRetentionDays, st.AuditRetentionDays)
		case err != nil:
			return err
		}
		st.AuditRetentionDays = *v
		old.AuditRetentionDays = *v // recorded by SetRetention as audit.retention.changed
	}
	// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
	if _, err := svc.p.SQL.Exec(r.Context(), `UPDATE tenants SET name = ?, session_idle_minutes = ?, session_absolute_minutes = ?, rate_limit_per_minute = ?, mfa_required = ?, notices_to_owners = ? WHERE id = ?`,
		st.Name, st.SessionIdleMinutes, st.SessionAbsoluteMinutes, st.RateLimitPerMinute, st.MFARequired, boolInt(st.SecurityNoticesToOwners), s.Tenant); err != nil {
		return err
	}
	if from, to := settingsDiff(&old, st); len(from) > 0 {
		typ, id := s.Actor()
		if err := web.RecordEvent(r, svc.p, audit.Event{TenantID: s.Tenant, ActorType: typ, ActorID: id, Action: "settings.changed",
			Target: "tenant:" + s.Tenant, Values: map[string]any{"from": from, "to": to}}); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, st)
	return nil
}

// settingsDiff is what changed, as two objects of the changed fields with
// their JSON names and types, for the audit log ("from": {"name": "Acme"},
// "to": {"name": "Acme Inc"}). The retention is not here: SetRetention
// records its own change.
func settingsDiff(old, cur *settings) (from, to map[string]any) {
	from, to = map[string]any{}, map[string]any{}
	// Every field, by its JSON name, so that one added later is audited
	// without anyone remembering to; audit_retention_days is recorded by
	// the audit log itself (SetRetention).
	ov, cv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	for i := range ov.NumField() {
		name, _, _ := strings.Cut(ov.Type().Field(i).Tag.Get("json"), ",")
		if name == "audit_retention_days" {
			continue
		}
		if a, b := ov.Field(i).Interface(), cv.Field(i).Interface(); a != b {
			from[name], to[name] = a, b
		}
	}
	return from, to
}

// Session timeout bounds a tenant may choose within.
const (
	defaultIdleMinutes     = 30
	defaultAbsoluteMinutes = 12 * 60
	minIdleMinutes         = 5
	maxIdleMinutes         = 120
	minAbsoluteMinutes     = 60
	maxAbsoluteMinutes     = 24 * 60
)

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
