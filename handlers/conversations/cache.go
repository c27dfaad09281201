package conversations

import (
	"context"
	"encoding/json"
	"time"

	"pommy.ai/edge/storage"
)

// The KV cache of conversations: what never changes once a conversation is
// committed (that it exists, its contact, when it was made). Reading the
// events of a held stream, which every wake-up of every subscriber repeats,
// takes it instead of the conversation's row: a poll is then one SQL query,
// not two. It holds nothing sealed and nothing that changes (status,
// last_seq, unread live only in the row): KV is eventually consistent
// (about 60 s between edge locations), and a stale last_seq could make a
// poll answer "nothing new" while events wait. So a cached entry can never
// be wrong, only missing; a missing or unreadable one is a miss, and the
// row is read (and cached) as before. Best effort: a failed write costs
// the next reader one query.

const convCacheTTL = 10 * time.Minute

// convFacts is what the cache holds.
type convFacts struct {
	ContactID string `json:"contact_id"`
	CreatedAt int64  `json:"created_at"`
}

func convCacheKey(tenant, id string) string { return "t/" + tenant + "/conv/" + id }

// cacheConv records a committed conversation's facts.
func (s *Store) cacheConv(ctx context.Context, c *convRow) {
	if s.KV == nil {
		return
	}
	b, _ := json.Marshal(convFacts{ContactID: c.ContactID, CreatedAt: c.Created})
	s.KV.Put(ctx, convCacheKey(s.Tenant, c.ID), b, storage.KVPutOptions{TTL: convCacheTTL})
}

// exists says whether conversation id is the tenant's, and whose it is
// (its contact, which never changes): from the cache if it has the answer
// (cached reports that), else from the row, which it then caches. An
// unknown or malformed id is errNoConversation.
func (s *Store) exists(ctx context.Context, id string) (contact string, cached bool, err error) {
	if !validID("c", id) {
		return "", false, errNoConversation
	}
	if s.KV != nil {
		if b, err := s.KV.Get(ctx, convCacheKey(s.Tenant, id)); err == nil {
			var f convFacts
			if json.Unmarshal(b, &f) == nil && f.ContactID != "" {
				return f.ContactID, true, nil
			}
		}
	}
	cv, err := s.load(ctx, id)
	if err != nil {
		return "", false, err
	}
	s.cacheConv(ctx, cv)
	return cv.ContactID, false, nil
}
