package testroutes

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/storage"
)

// Test conversations let the webhook suites cause events without the
// conversations package: POST /__test/webhooks/emit stores an event's data
// in KV and appends webhooks.Fanout in a batch, as a real change does; the
// test renderer serves those events at delivery time.

const testConvPrefix = "tc_"

func init() { handlers.RegisterTestRenderer(wrapRenderer) }

func testEventKey(tenant, conv string, seq int64) string {
	return "t/" + tenant + "/__test/events/" + conv + "/" + strconv.FormatInt(seq, 10)
}

type testRenderer struct {
	p    storage.Platform
	next webhooks.Renderer
}

func wrapRenderer(p storage.Platform, next webhooks.Renderer) webhooks.Renderer {
	return testRenderer{p: p, next: next}
}

func (r testRenderer) Event(ctx context.Context, tenant, conv string, seq int64) (string, json.RawMessage, error) {
	if !strings.HasPrefix(conv, testConvPrefix) {
		if r.next == nil {
			return "", nil, storage.ErrNotFound
		}
		return r.next.Event(ctx, tenant, conv, seq)
	}
	b, err := r.p.KV.Get(ctx, testEventKey(tenant, conv, seq))
	if err != nil {
		return "", nil, err
	}
	var ev struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return "", nil, err
	}
	return ev.Type, ev.Data, nil
}

func mountWebhooks(mux *http.ServeMux, env handlers.TestEnv) {
	mux.HandleFunc("POST /__test/webhooks/emit", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Tenant         string          `json:"tenant"`
			EventType      string          `json:"event_type"`
			ConversationID string          `json:"conversation_id"`
			Seq            int64           `json:"seq"`
			Data           json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Tenant == "" ||
			!strings.HasPrefix(req.ConversationID, testConvPrefix) || !webhooks.ValidEventType(req.EventType) || len(req.Data) == 0 {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {tenant, event_type, conversation_id (tc_…), seq, data}"))
			return
		}
		ctx := r.Context()
		b, _ := json.Marshal(map[string]any{"type": req.EventType, "data": req.Data})
		if err := env.Platform.KV.Put(ctx, testEventKey(req.Tenant, req.ConversationID, req.Seq), b, storage.KVPutOptions{}); err != nil {
			env.WriteError(w, r, err)
			return
		}
		now := env.Platform.Clock.Now().UnixMilli()
		res, err := env.Platform.SQL.Batch(ctx, []storage.Stmt{webhooks.Fanout(req.Tenant, req.EventType, req.ConversationID, req.Seq, now)})
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]int64{"enqueued": res[0].RowsAffected})
	})
	// /__test/jobs/run runs due jobs once in this request, for suites that
	// must not wait for the home's own runner.
	mux.HandleFunc("POST /__test/jobs/run", func(w http.ResponseWriter, r *http.Request) {
		n, err := handlers.RunJobs(r.Context(), env.Platform, env.Config, handlers.JobOptions{})
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]int{"taken": n})
	})
	// /__test/jobs/dead makes a dead job of a "test." kind, which no build
	// runs, so that the suites can list and retry dead jobs without
	// failing real work first (tests/e2e does that with real deliveries).
	mux.HandleFunc("POST /__test/jobs/dead", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Tenant string `json:"tenant"`
			Kind   string `json:"kind"`
			Ref    string `json:"ref"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || req.Tenant == "" ||
			!strings.HasPrefix(req.Kind, "test.") || len(req.Kind) > 64 || len(req.Ref) > 200 {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {tenant, kind (test.…), ref?}"))
			return
		}
		id := jobs.NewID()
		now := env.Platform.Clock.Now().UnixMilli()
		_, err := env.Platform.SQL.Batch(r.Context(), []storage.Stmt{
			jobs.Enqueue(jobs.Spec{Tenant: req.Tenant, Kind: req.Kind, ID: id, Ref: req.Ref, Payload: json.RawMessage(`{}`), MaxAttempts: 1}, now),
			{Query: `UPDATE jobs SET state = 'dead', attempts = 1, last_error = 'made dead by a test', updated_at = ? WHERE tenant_id = ? AND id = ?`,
				Args: []any{now, req.Tenant, id}},
		})
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]string{"id": id})
	})
}
