package widget

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/handlers/strictjson"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Identity modes: off (anonymous visitors only), optional (a page may
// identify its signed-in users), enforce (only identified visitors chat).
const (
	IdentityOff      = "off"
	IdentityOptional = "optional"
	IdentityEnforce  = "enforce"
)

// Limits of the settings.
const (
	MaxAllowedOrigins      = 50
	DefaultAttachmentBytes = 10 << 20
	MinAttachmentBytes     = 1 << 10
	maxMessageChars        = 1000
	maxAgentNameChars      = 60
	maxLauncherLabelChars  = 40
	maxIntervalsPerDay     = 4
	settingsBodyLimit      = 16 << 10
)

// secretKind is the sealing kind (associated data) of the identity secret.
const secretKind = "widget.identity_secret"

// BusinessHours are the hours the team answers, judged by the widget in
// the visitor's browser (Intl knows IANA zones; Go at the edge has no tz
// database).
type BusinessHours struct {
	Timezone string                 `json:"timezone"`
	Week     map[string][][2]string `json:"week"`
}

// PreChat is the optional form before the first message.
type PreChat struct {
	Enabled bool           `json:"enabled"`
	Fields  []PreChatField `json:"fields"`
}

// PreChatField is one field of the pre-chat form.
type PreChatField struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
}

// look is the non-secret settings, stored as one JSON object (the settings
// column), so that a field added later needs no migration.
type look struct {
	Greeting           string         `json:"greeting"`
	OfflineMessage     string         `json:"offline_message"`
	BusinessHours      *BusinessHours `json:"business_hours"`
	PreChat            PreChat        `json:"pre_chat"`
	Color              string         `json:"color"`
	Position           string         `json:"position"`
	Locale             string         `json:"locale"`
	AgentName          string         `json:"agent_name"`
	LauncherLabel      string         `json:"launcher_label"`
	CSAT               bool           `json:"csat"`
	AttachmentMaxBytes int64          `json:"attachment_max_bytes"`
}

// defaults are a tenant's settings before anyone saved them. Texts are
// empty: the widget then shows its own text in the visitor's language.
func defaults() look {
	return look{Color: "#2f5bea", Position: "right", Locale: "en", CSAT: true,
		AttachmentMaxBytes: DefaultAttachmentBytes, PreChat: PreChat{Fields: []PreChatField{}}}
}

// record is a tenant's widget settings row with what the widget needs of
// the tenant itself, read in one query.
type record struct {
	look
	Origins      []string
	Identity     string
	SecretSealed []byte
	Version      int64 // 0: no row yet (the defaults)
	TenantName   string
	TenantRate   int64
}

func (rec *record) allows(origin string) bool {
	return origin != "" && slices.Contains(rec.Origins, origin)
}

func (rec *record) policy() web.VisitorPolicy {
	return web.VisitorPolicy{AgentName: rec.AgentName, AttachmentMaxBytes: rec.AttachmentMaxBytes, CSAT: rec.CSAT}
}

// load reads the tenant and its widget settings; storage.ErrNotFound if
// the tenant does not exist. It runs on every widget request, so that a
// removed origin or a switch to enforce takes effect at once (nothing is
// cached, in KV or elsewhere).
func (svc *Service) load(ctx context.Context, tenant string) (*record, error) {
	// tenant-lookup: keyed by the tenant id itself (tenants.id, widget_settings.tenant_id); the widget's public routes name their tenant.
	rows, err := svc.p.SQL.Query(ctx, `SELECT t.name, t.rate_limit_per_minute, w.settings, w.allowed_origins, w.identity_mode, w.identity_secret_sealed, COALESCE(w.version, 0)
		FROM tenants t LEFT JOIN widget_settings w ON w.tenant_id = t.id WHERE t.id = ?`, tenant)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, storage.ErrNotFound
	}
	rec := &record{look: defaults(), Identity: IdentityOff}
	var settings, origins, mode string
	if err := rows.Scan(0, &rec.TenantName, &rec.TenantRate, &settings, &origins, &mode, &rec.SecretSealed, &rec.Version); err != nil {
		return nil, err
	}
	if rec.Version == 0 {
		return rec, nil
	}
	// Written only by this package after validation; read leniently so
	// that a field added later keeps its default in older rows.
	if err := json.Unmarshal([]byte(settings), &rec.look); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(origins), &rec.Origins); err != nil {
		return nil, err
	}
	if rec.PreChat.Fields == nil {
		rec.PreChat.Fields = []PreChatField{}
	}
	rec.Identity = mode
	return rec, nil
}

// settingsView is GET /v1/widget/settings.
type settingsView struct {
	AllowedOrigins    []string `json:"allowed_origins"`
	Identity          string   `json:"identity"`
	IdentitySecretSet bool     `json:"identity_secret_set"`
	look
}

func view(rec *record) settingsView {
	o := rec.Origins
	if o == nil {
		o = []string{}
	}
	return settingsView{AllowedOrigins: o, Identity: rec.Identity, IdentitySecretSet: len(rec.SecretSealed) > 0, look: rec.look}
}

// GetSettings is GET /v1/widget/settings.
func (svc *Service) GetSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rec, err := svc.load(r.Context(), s.Tenant)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, view(rec))
	return nil
}

// settingsUpdate is PATCH /v1/widget/settings: any subset.
// BusinessHours is raw so that null (no hours) differs from absent.
type settingsUpdate struct {
	AllowedOrigins     *[]string       `json:"allowed_origins"`
	Identity           *string         `json:"identity"`
	Greeting           *string         `json:"greeting"`
	OfflineMessage     *string         `json:"offline_message"`
	BusinessHours      json.RawMessage `json:"business_hours"`
	PreChat            *PreChat        `json:"pre_chat"`
	Color              *string         `json:"color"`
	Position           *string         `json:"position"`
	Locale             *string         `json:"locale"`
	AgentName          *string         `json:"agent_name"`
	LauncherLabel      *string         `json:"launcher_label"`
	CSAT               *bool           `json:"csat"`
	AttachmentMaxBytes *int64          `json:"attachment_max_bytes"`
}

// UpdateSettings is PATCH /v1/widget/settings. The write is conditional
// on the version read, so two concurrent changes cannot silently undo one
// another (the loser gets 409 and retries).
func (svc *Service) UpdateSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req settingsUpdate
	if err := web.DecodeJSON(w, r, settingsBodyLimit, &req); err != nil {
		return err
	}
	rec, err := svc.load(r.Context(), s.Tenant)
	if err != nil {
		return err
	}
	old := view(rec)
	if err := apply(rec, &req); err != nil {
		return err
	}
	if rec.Identity == IdentityEnforce && len(rec.SecretSealed) == 0 {
		return web.Errorf(http.StatusConflict, "identity_secret_missing", "identity cannot be enforce before an identity secret exists (POST /v1/widget/identity-secret)")
	}
	changed := changedFields(old, view(rec))
	if len(changed) == 0 {
		web.WriteJSON(w, http.StatusOK, old)
		return nil
	}
	if err := svc.save(r.Context(), s.Tenant, rec, s.Now().UnixMilli()); err != nil {
		return err
	}
	details := map[string]string{"fields": strings.Join(changed, ",")}
	if added, removed := diff(rec.Origins, old.AllowedOrigins), diff(old.AllowedOrigins, rec.Origins); len(added)+len(removed) > 0 {
		details["origins_added"] = web.Truncate(strings.Join(added, " "), 2000)
		details["origins_removed"] = web.Truncate(strings.Join(removed, " "), 2000)
	}
	if slices.Contains(changed, "identity") {
		details["identity"] = old.Identity + "->" + rec.Identity
	}
	if err := s.Record(r, "widget.settings_changed", "widget:"+s.Tenant, details); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, view(rec))
	return nil
}

// save writes rec if the row is still at rec.Version (or still absent),
// and bumps rec.Version.
func (svc *Service) save(ctx context.Context, tenant string, rec *record, now int64) error {
	lk, err := json.Marshal(rec.look)
	if err != nil {
		return err
	}
	origins := rec.Origins
	if origins == nil {
		origins = []string{}
	}
	ob, err := json.Marshal(origins)
	if err != nil {
		return err
	}
	var res storage.Result
	if rec.Version == 0 {
		res, err = svc.p.SQL.Exec(ctx, `INSERT INTO widget_settings (tenant_id, settings, allowed_origins, identity_mode, identity_secret_sealed, version, updated_at)
			VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (tenant_id) DO NOTHING`, tenant, string(lk), string(ob), rec.Identity, nilIfEmpty(rec.SecretSealed), now)
	} else {
		res, err = svc.p.SQL.Exec(ctx, `UPDATE widget_settings SET settings = ?, allowed_origins = ?, identity_mode = ?, version = version + 1, updated_at = ?
			WHERE tenant_id = ? AND version = ?`, string(lk), string(ob), rec.Identity, now, tenant, rec.Version)
	}
	if err != nil {
		return err
	}
	if res.RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "conflict", "the widget settings changed while this change was made; read them again and retry")
	}
	rec.Version++
	return nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// apply validates req and applies it to rec.
func apply(rec *record, req *settingsUpdate) error {
	if req.AllowedOrigins != nil {
		o, err := checkOrigins(*req.AllowedOrigins)
		if err != nil {
			return err
		}
		rec.Origins = o
	}
	if v := req.Identity; v != nil {
		switch *v {
		case IdentityOff, IdentityOptional, IdentityEnforce:
			rec.Identity = *v
		default:
			return web.Errorf(http.StatusBadRequest, "invalid_identity", "identity must be off, optional or enforce")
		}
	}
	var err error
	if v := req.Greeting; v != nil {
		if rec.Greeting, err = checkText("greeting", *v, maxMessageChars); err != nil {
			return err
		}
	}
	if v := req.OfflineMessage; v != nil {
		if rec.OfflineMessage, err = checkText("offline_message", *v, maxMessageChars); err != nil {
			return err
		}
	}
	if len(req.BusinessHours) > 0 {
		if rec.BusinessHours, err = checkHours(req.BusinessHours); err != nil {
			return err
		}
	}
	if v := req.PreChat; v != nil {
		if err := checkPreChat(v); err != nil {
			return err
		}
		rec.PreChat = *v
	}
	if v := req.Color; v != nil {
		if !validColor(*v) {
			return web.Errorf(http.StatusBadRequest, "invalid_color", "color must be #rrggbb")
		}
		rec.Color = strings.ToLower(*v)
	}
	if v := req.Position; v != nil {
		if *v != "right" && *v != "left" {
			return web.Errorf(http.StatusBadRequest, "invalid_position", "position must be right or left")
		}
		rec.Position = *v
	}
	if v := req.Locale; v != nil {
		if *v != "en" && *v != "tr" {
			return web.Errorf(http.StatusBadRequest, "invalid_locale", "locale must be en or tr")
		}
		rec.Locale = *v
	}
	if v := req.AgentName; v != nil {
		if rec.AgentName, err = web.CheckName("agent_name", *v, false, maxAgentNameChars); err != nil {
			return err
		}
	}
	if v := req.LauncherLabel; v != nil {
		if rec.LauncherLabel, err = web.CheckName("launcher_label", *v, false, maxLauncherLabelChars); err != nil {
			return err
		}
	}
	if v := req.CSAT; v != nil {
		rec.CSAT = *v
	}
	if v := req.AttachmentMaxBytes; v != nil {
		if *v < MinAttachmentBytes || *v > DefaultAttachmentBytes {
			return web.Errorf(http.StatusBadRequest, "invalid_attachment_max_bytes", "attachment_max_bytes must be %d to %d", MinAttachmentBytes, DefaultAttachmentBytes)
		}
		rec.AttachmentMaxBytes = *v
	}
	return nil
}

// days are the keys of BusinessHours.Week.
var days = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// The checks below are written out rather than as regular expressions:
// package regexp costs the worker about 300 KB for three small shapes.

// validColor: #rrggbb.
func validColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < 7; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// validZone: an IANA zone name's shape (Area/Location[/Sub], or UTC); the
// browser's Intl decides whether it exists.
func validZone(s string) bool {
	if s == "UTC" {
		return true
	}
	parts := strings.Split(s, "/")
	if len(s) > 64 || len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[0][0] < 'A' || parts[0][0] > 'Z' {
		return false
	}
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			return false
		}
		for _, c := range p {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || (i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-'))
			if !ok {
				return false
			}
		}
	}
	return true
}

// validTime: HH:MM from 00:00 to 24:00.
func validTime(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	h, m := int(s[0]-'0')*10+int(s[1]-'0'), int(s[3]-'0')*10+int(s[4]-'0')
	return (h < 24 && m < 60) || (h == 24 && m == 0)
}

// checkOrigins normalizes each origin with the platform's one rule
// (web.ParseOrigin) and drops repeats.
func checkOrigins(in []string) ([]string, error) {
	if len(in) > MaxAllowedOrigins {
		return nil, web.Errorf(http.StatusBadRequest, "invalid_allowed_origins", "at most %d allowed origins", MaxAllowedOrigins)
	}
	out := []string{}
	for i, o := range in {
		n, err := web.ParseOrigin(o)
		if err != nil || len(n) > 200 {
			e := web.Errorf(http.StatusBadRequest, "invalid_allowed_origins", "allowed_origins[%d]: an origin is scheme://host[:port] (http or https, no path), at most 200 characters", i)
			e.Field = "allowed_origins[" + strconv.Itoa(i) + "]"
			return nil, e
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// checkText allows line breaks (a greeting may have two lines) but no
// other control characters.
func checkText(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > max {
		return "", web.Errorf(http.StatusBadRequest, "invalid_"+field, "%s must be at most %d characters", field, max)
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f {
			return "", web.Errorf(http.StatusBadRequest, "invalid_"+field, "%s must not contain control characters other than line breaks", field)
		}
	}
	return s, nil
}

func checkHours(raw json.RawMessage) (*BusinessHours, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		e := web.Errorf(http.StatusBadRequest, "invalid_business_hours", format, args...)
		e.Field = "business_hours"
		return e
	}
	// Intervals are decoded as lists, not [2]string: encoding/json drops
	// a third element of a fixed array without a word.
	var in struct {
		Timezone string                `json:"timezone"`
		Week     map[string][][]string `json:"week"`
	}
	if err := strictjson.Decode(raw, &in); err != nil {
		return nil, bad("business_hours must be null or {\"timezone\": \"Europe/Istanbul\", \"week\": {\"mon\": [[\"09:00\", \"18:00\"]], …}}")
	}
	bh := BusinessHours{Timezone: in.Timezone}
	if !validZone(bh.Timezone) {
		return nil, bad("business_hours.timezone must be an IANA time zone name such as Europe/Istanbul, or UTC")
	}
	week := map[string][][2]string{}
	for _, d := range days {
		week[d] = [][2]string{}
	}
	for d, list := range in.Week {
		if _, ok := week[d]; !ok {
			return nil, bad("business_hours.week has %q; the days are mon, tue, wed, thu, fri, sat, sun", web.Truncate(d, 10))
		}
		if len(list) > maxIntervalsPerDay {
			return nil, bad("business_hours.week.%s: at most %d intervals a day", d, maxIntervalsPerDay)
		}
		prev := ""
		ivs := [][2]string{}
		for _, l := range list {
			if len(l) != 2 {
				return nil, bad("business_hours.week.%s: an interval is [\"HH:MM\", \"HH:MM\"]", d)
			}
			iv := [2]string{l[0], l[1]}
			ivs = append(ivs, iv)
			if !validTime(iv[0]) || !validTime(iv[1]) || iv[0] >= iv[1] || iv[0] < prev {
				return nil, bad("business_hours.week.%s: intervals are [\"HH:MM\", \"HH:MM\"], start before end, in order, not overlapping", d)
			}
			prev = iv[1]
		}
		week[d] = ivs
	}
	bh.Week = week
	return &bh, nil
}

func checkPreChat(p *PreChat) error {
	if p.Fields == nil {
		p.Fields = []PreChatField{}
	}
	seen := map[string]bool{}
	for _, f := range p.Fields {
		if f.Name != "name" && f.Name != "email" || seen[f.Name] {
			return web.Errorf(http.StatusBadRequest, "invalid_pre_chat", "pre_chat.fields are name and email, each at most once")
		}
		seen[f.Name] = true
	}
	return nil
}

// changedFields names the settings that differ, by their JSON names.
func changedFields(a, b settingsView) []string {
	var ma, mb map[string]json.RawMessage
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	var out []string
	for k, v := range mb {
		if string(ma[k]) != string(v) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// diff is what a has that b has not.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// secretPrefix marks an identity secret, so that one pasted in the wrong
// place is recognizable (and secret scanners can find it).
const secretPrefix = "wis_"

// RotateIdentitySecret is POST /v1/widget/identity-secret: a new secret
// (256 random bits), shown once, stored only sealed under the tenant's
// data key. Identity JWTs are HMAC-SHA256 with the whole secret string,
// "wis_" included, as the key (its UTF-8 bytes). Visitor tokens minted
// with the old secret stay valid until their own expiry (at most 24 h).
func (svc *Service) RotateIdentitySecret(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	var b [32]byte
	rand.Read(b[:])
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sealed, err := s.Keys.Seal(ctx, s.Tenant, secretKind, s.Tenant, []byte(secret))
	if err != nil {
		return err
	}
	lk, err := json.Marshal(defaults())
	if err != nil {
		return err
	}
	// One statement: only the secret changes in an existing row, so no
	// concurrent settings change is lost; the version moves, so a settings
	// change read before it is retried (and sees identity_secret_set).
	if _, err := svc.p.SQL.Exec(ctx, `INSERT INTO widget_settings (tenant_id, settings, allowed_origins, identity_mode, identity_secret_sealed, version, updated_at)
		VALUES (?, ?, '[]', 'off', ?, 1, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET identity_secret_sealed = excluded.identity_secret_sealed, version = version + 1, updated_at = excluded.updated_at`,
		s.Tenant, string(lk), sealed, s.Now().UnixMilli()); err != nil {
		return err
	}
	if err := s.Record(r, "widget.identity_secret_rotated", "widget:"+s.Tenant, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]string{"secret": secret})
	return nil
}

// identitySecret opens the tenant's identity secret; nil when none.
func (svc *Service) identitySecret(ctx context.Context, tenant string, rec *record) ([]byte, error) {
	if len(rec.SecretSealed) == 0 {
		return nil, nil
	}
	keys := svc.keys()
	secret, err := keys.Open(ctx, tenant, secretKind, tenant, rec.SecretSealed)
	if err != nil {
		return nil, errors.Join(errors.New("widget: open identity secret"), err)
	}
	return secret, nil
}

// PurgeTenantStmts deletes a tenant's widget rows.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{{Query: `DELETE FROM widget_settings WHERE tenant_id = ?`, Args: []any{tenant}}}
}
