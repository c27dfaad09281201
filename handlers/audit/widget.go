package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// NoticeWidgetOriginRefused is the notice kind of a page on an origin the
// tenant did not list that tried to load the widget.
const NoticeWidgetOriginRefused = "widget_origin_refused"

// ActionWidgetOriginRefused is its security event.
const ActionWidgetOriginRefused = "security.widget_origin_refused"

// MaxWidgetOriginNotices bounds the notices of refused origins one tenant
// gets in a UTC day: the Origin header is anyone's to choose, so a flood
// from many made-up origins must not write rows without end. Past it, one
// more notice says that further origins were refused, and nothing else is
// written that day.
const MaxWidgetOriginNotices = 20

// RaiseWidgetOriginRefused tells the tenant's owners that a page on origin
// (already normalized, or "" for one that is not a valid origin) asked for
// a widget token and was refused: at most one notice per (origin, UTC
// day), at most MaxWidgetOriginNotices origins a day, then one "more
// origins" notice. ev is the security event's template (where the request
// came from). It reports whether a notice was raised.
func (l *Log) RaiseWidgetOriginRefused(ctx context.Context, tenant, origin string, ev Event) (bool, error) {
	now := l.clock.Now().UTC()
	day := now.Format("2006-01-02")
	shown := origin
	if shown == "" {
		shown = "(not a valid origin)"
	}
	// The dedupe key holds a hash, not the origin: the key is an index
	// entry and the origin is the caller's choice.
	h := sha256.Sum256([]byte(origin))
	dedupe := "widget_origin:" + day + ":" + hex.EncodeToString(h[:12])
	rows, err := l.sql.Query(ctx, `SELECT 1 FROM security_notices WHERE tenant_id = ? AND dedupe = ?`, tenant, dedupe)
	if err != nil || rows.Len() > 0 {
		return false, err
	}
	dayStart := now.Truncate(24 * 60 * 60 * 1e9).UnixMilli()
	rows, err = l.sql.Query(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM security_notices
		WHERE tenant_id = ? AND at >= ? AND kind = ? LIMIT ?)`, tenant, dayStart, NoticeWidgetOriginRefused, MaxWidgetOriginNotices+1)
	if err != nil {
		return false, err
	}
	var n int
	if err := rows.Scan(0, &n); err != nil {
		return false, err
	}
	msg := fmt.Sprintf("A page on %s tried to load the chat widget and was refused: that origin is not in the widget's allowed origins. Add it in the widget settings if it is yours.", shown)
	if n >= MaxWidgetOriginNotices {
		dedupe = "widget_origin:" + day + ":more"
		msg = fmt.Sprintf("Pages on more than %d different origins tried to load the chat widget today and were refused; further refused origins are not listed until tomorrow (UTC).", MaxWidgetOriginNotices)
		shown = "(more origins)"
	}
	ev.TenantID = tenant
	ev.ActorType = ActorAnonymous
	ev.Action = ActionWidgetOriginRefused
	ev.Target = "origin:" + shown
	ev.Details = map[string]string{"origin": shown}
	return l.Raise(ctx, tenant, NoticeWidgetOriginRefused, dedupe, msg, ev)
}
