package identity

import (
	"context"
	"strings"

	"pommy.ai/edge/storage"
)

// maxNames bounds one lookup's ids (a page of events names at most a few
// hundred authors; SQLite binds at most 32766 parameters, D1 100).
const maxNames = 90

// MemberNames returns the display names of tenant's members among ids
// (user id to name; a former member, an unknown id or an empty name is
// absent). It is what a widget visitor sees of the people who answer
// them: never their email or id. The conversations capability takes it
// as its PersonNames hook.
func MemberNames(ctx context.Context, p storage.Platform, tenant string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for len(ids) > 0 {
		n := min(len(ids), maxNames)
		chunk := ids[:n]
		ids = ids[n:]
		args := []any{tenant}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := p.SQL.Query(ctx, `SELECT u.id, u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ? AND m.user_id IN (`+
			strings.Repeat("?, ", n-1)+`?)`, args...)
		if err != nil {
			return nil, err
		}
		for i := range rows.Len() {
			var id, name string
			if err := rows.Scan(i, &id, &name); err != nil {
				return nil, err
			}
			if name != "" {
				out[id] = name
			}
		}
	}
	return out, nil
}
