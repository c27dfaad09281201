package audit

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrBadFilter wraps every reason a Filter is refused.
var ErrBadFilter = errors.New("audit: bad filter")

// Filter selects events. Zero fields do not filter.
type Filter struct {
	// Action matches events whose action starts with it ("auth." or
	// "auth.login.failed").
	Action  string
	ActorID string
	Target  string
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
	// Limit is the page size of Query (default 100, at most 1000). Export
	// ignores it.
	Limit int
	// Cursor continues a Query after the page that returned it. Export
	// ignores it.
	Cursor string
}

// Entry is an event as Query and Export return it.
type Entry struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	AtMS      int64     `json:"at_ms"`
	TenantID  string    `json:"tenant_id"`
	ActorType string    `json:"actor_type"`
	ActorID   string    `json:"actor_id"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	RequestID string    `json:"request_id"`
	// Details holds text details as strings and structured ones as JSON
	// objects, arrays, integers, booleans or null.
	Details  map[string]any `json:"details"`
	PrevHash string         `json:"prev_hash"`
	Hash     string         `json:"hash"`
}

// Page is one page of a Query, newest first. NextCursor is empty on the
// last page.
type Page struct {
	Events     []Entry `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

func entry(r *row) Entry {
	d := map[string]any{}
	dec := json.NewDecoder(strings.NewReader(r.Detail))
	dec.UseNumber()
	dec.Decode(&d) // a malformed row still lists; Verify reports it
	return Entry{
		Seq: r.Seq, At: time.UnixMilli(r.AtMS).UTC(), AtMS: r.AtMS, TenantID: r.TenantID,
		ActorType: r.ActorType, ActorID: r.ActorID, Action: r.Action, Target: r.Target, IP: r.IP,
		UserAgent: r.UserAgent, RequestID: r.RequestID, Details: d,
		PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
	}
}

// where builds the tenant-scoped condition of f.
func (f *Filter) where(tenant string) (string, []any, error) {
	var b strings.Builder
	args := []any{tenant}
	b.WriteString(`tenant_id = ?`)
	if f.Action != "" {
		if len(f.Action) > maxField {
			return "", nil, fmt.Errorf("%w: action too long", ErrBadFilter)
		}
		// A prefix as a range, so the (tenant_id, action, at) index serves
		// it and LIKE's case folding and wildcards do not apply.
		b.WriteString(` AND action >= ? AND action < ?`)
		args = append(args, f.Action, f.Action+"\U0010FFFF")
	}
	if f.ActorID != "" {
		b.WriteString(` AND actor_id = ?`)
		args = append(args, f.ActorID)
	}
	if f.Target != "" {
		b.WriteString(` AND target = ?`)
		args = append(args, f.Target)
	}
	if !f.Since.IsZero() {
		b.WriteString(` AND at >= ?`)
		args = append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		if !f.Since.IsZero() && !f.Until.After(f.Since) {
			return "", nil, fmt.Errorf("%w: until must be after since", ErrBadFilter)
		}
		b.WriteString(` AND at < ?`)
		args = append(args, f.Until.UnixMilli())
	}
	return b.String(), args, nil
}

// Query returns one page of the tenant's events matching f, newest first.
func (l *Log) Query(ctx context.Context, tenant string, f Filter) (Page, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return Page{}, fmt.Errorf("%w: limit must be 1 to %d", ErrBadFilter, MaxLimit)
	}
	where, args, err := f.where(tenant)
	if err != nil {
		return Page{}, err
	}
	if f.Cursor != "" {
		before, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || before <= 0 {
			return Page{}, fmt.Errorf("%w: bad cursor", ErrBadFilter)
		}
		where += ` AND seq < ?`
		args = append(args, before)
	}
	args = append(args, limit+1)
	rows, err := l.sql.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE `+where+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return Page{}, fmt.Errorf("audit: query: %w", err)
	}
	rs, err := scanRows(tenant, rows)
	if err != nil {
		return Page{}, fmt.Errorf("audit: query: %w", err)
	}
	p := Page{Events: []Entry{}}
	if len(rs) > limit {
		rs = rs[:limit]
		p.NextCursor = strconv.FormatInt(rs[limit-1].Seq, 10)
	}
	for i := range rs {
		p.Events = append(p.Events, entry(&rs[i]))
	}
	return p, nil
}

// Export writes the tenant's events matching f (ignoring Limit and Cursor)
// to w as NDJSON, one Entry per line, oldest first, reading a page at a
// time. It returns the number of events written.
func (l *Log) Export(ctx context.Context, tenant string, f Filter, w io.Writer) (int64, error) {
	where, args, err := f.where(tenant)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := newEncoder(bw)
	var n, after int64
	for {
		a := append(append([]any{}, args...), after, pageSize)
		rows, err := l.sql.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE `+where+` AND seq > ? ORDER BY seq LIMIT ?`, a...)
		if err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		rs, err := scanRows(tenant, rows)
		if err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		for i := range rs {
			if err := enc.Encode(entry(&rs[i])); err != nil {
				return n, err
			}
			n++
			after = rs[i].Seq
		}
		if err := bw.Flush(); err != nil {
			return n, err
		}
		if len(rs) < pageSize {
			return n, nil
		}
	}
}
