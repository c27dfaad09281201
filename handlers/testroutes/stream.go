package testroutes

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
)

// The test stream: a minimal application side of the stream protocol
// (docs/realtime.md) over a test event log in SQL, so that each home's
// stream holder (the local host's hub, the edge's Durable Object) can be
// tested, and measured, without the conversations' rules. It uses only the
// storage ports, so it runs unchanged in both homes.
//
//	POST /__test/stream/{topic}?count=K    appends K (default 1) events and publishes one wake-up
//	GET  /__test/stream/{topic}             the stream route (SSE or long-poll)
//	GET  /__test/stream-stats/{topic}       {"seq","gets","polls"}: the last seq and the GETs seen
//	GET  /__test/stream-echo                the Pommy-Stream-* and Last-Event-ID headers the application saw
//
// The stream route's query parameters:
//
//	after=N       the cursor when there is no Last-Event-ID (Last-Event-ID wins: a home's re-polls set it)
//	mode=sse|longpoll  default sse when Accept names text/event-stream, else longpoll
//	page=N        events per answer (1..1000, default 100); more remain => Pommy-Stream-More: 1
//	wait=S        long-poll: how long the home may wait for a wake-up (clamped to 1..30, echoed)
//	fail_at=S     a re-poll (Pommy-Stream-Poll: 1) whose cursor is >= S answers fail_status
//	fail_status=C 401 (default), 403, 404 or 429
//	hold_ms=N     a re-poll waits N ms (0..1000) after reading the log before it answers, widening the
//	              window in which a wake-up arrives while a poll runs (the loss test's instrument)
//
// Every answer carries X-Pommy-Test-Poll: 1 when the application saw
// Pommy-Stream-Poll, so a test can tell that a client could not forge it.

const (
	streamPageDefault = 100
	streamPageMax     = 1000
	streamAppendMax   = 1000
	// maxCursor: cursors are sequence numbers stored in SQL, and D1 holds
	// numbers as doubles.
	maxCursor = 1<<53 - 1
)

// The test log's tables are made on first use: test routes have no
// migration of their own (storage/migrations ships in every build).
var streamSchema = []storage.Stmt{
	{Query: `CREATE TABLE IF NOT EXISTS test_stream_events (
		topic TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL,
		PRIMARY KEY (topic, seq))`},
	{Query: `CREATE TABLE IF NOT EXISTS test_stream_gets (
		topic TEXT PRIMARY KEY, gets INTEGER NOT NULL, polls INTEGER NOT NULL)`},
}

// appendEventSQL takes the next seq of the topic in the same statement as
// the insert, so concurrent appends never share one.
//
// tenant-lookup: the test log is keyed by topic and holds no tenant's data.
const appendEventSQL = `INSERT INTO test_stream_events (topic, seq, type, at, data)
	SELECT ?1, COALESCE(MAX(seq), 0) + 1, 'test', ?2, json_object('n', COALESCE(MAX(seq), 0) + 1)
	FROM test_stream_events WHERE topic = ?1`

type testEvent struct {
	Seq  int64           `json:"seq"`
	Type string          `json:"type"`
	At   string          `json:"at"`
	Data json.RawMessage `json:"data"`
}

func mountStream(mux *http.ServeMux, env handlers.TestEnv) {
	writeJSON, writeError := env.WriteJSON, env.WriteError
	sql := env.Platform.SQL
	topicOf := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		t := r.PathValue("topic")
		if !storage.ValidTopic(t) {
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid_topic",
				fmt.Sprintf("a topic is 1 to %d characters of A-Z a-z 0-9 / _ : . -", storage.MaxTopic), "topic")
			return "", false
		}
		return t, true
	}

	mux.HandleFunc("POST /__test/stream/{topic...}", func(w http.ResponseWriter, r *http.Request) {
		topic, ok := topicOf(w, r)
		if !ok {
			return
		}
		count := 1
		if s := r.URL.Query().Get("count"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > streamAppendMax {
				writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", fmt.Sprintf("count must be 1..%d", streamAppendMax), "count")
				return
			}
			count = n
		}
		ctx := r.Context()
		if _, err := sql.Batch(ctx, streamSchema); err != nil {
			writeError(w, r, err)
			return
		}
		at := env.Platform.Clock.Now().UTC().Format(time.RFC3339Nano)
		var last int64
		if count == 1 {
			rows, err := sql.Query(ctx, appendEventSQL+" RETURNING seq", topic, at)
			if err != nil {
				writeError(w, r, err)
				return
			}
			if rows.Len() != 1 || rows.Scan(0, &last) != nil {
				writeError(w, r, fmt.Errorf("test stream: the append returned %d rows", rows.Len()))
				return
			}
		} else {
			stmts := make([]storage.Stmt, count)
			for i := range stmts {
				stmts[i] = storage.Stmt{Query: appendEventSQL, Args: []any{topic, at}}
			}
			if _, err := sql.Batch(ctx, stmts); err != nil {
				writeError(w, r, err)
				return
			}
			// The batch reports no rows; the topic's last seq now is at
			// least this batch's last.
			// tenant-lookup: the test log is keyed by topic.
			rows, err := sql.Query(ctx, `SELECT COALESCE(MAX(seq), 0) FROM test_stream_events WHERE topic = ?`, topic)
			if err != nil || rows.Len() != 1 || rows.Scan(0, &last) != nil {
				writeError(w, r, fmt.Errorf("test stream: reading the last seq: %v", err))
				return
			}
		}
		// After the commit, as the application does: a failed wake-up
		// costs latency, never an event.
		published := false
		if rt := env.Platform.Realtime; rt != nil {
			if err := rt.Publish(ctx, topic); err != nil {
				log.Printf("test stream: publish %q: %v", topic, err)
			} else {
				published = true
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": last, "count": count, "published": published})
	})

	mux.HandleFunc("GET /__test/stream/{topic...}", func(w http.ResponseWriter, r *http.Request) {
		topic, ok := topicOf(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		poll := r.Header.Get(storage.StreamPollHeader) != ""
		if poll {
			w.Header().Set("X-Pommy-Test-Poll", "1")
		} else {
			w.Header().Set("X-Pommy-Test-Poll", "0")
		}
		cursor, field, ok := requestCursor(r)
		if !ok {
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid_cursor",
				"a cursor is a decimal integer from 0 to 2^53-1", field)
			return
		}
		mode := q.Get("mode")
		switch mode {
		case "":
			mode = storage.StreamModeLongPoll
			if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
				mode = storage.StreamModeSSE
			}
		case storage.StreamModeSSE, storage.StreamModeLongPoll:
		default:
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", "mode must be sse or longpoll", "mode")
			return
		}
		page, ok := intParam(q.Get("page"), streamPageDefault, 1, streamPageMax)
		if !ok {
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", fmt.Sprintf("page must be 1..%d", streamPageMax), "page")
			return
		}
		wait := 0
		if s := q.Get("wait"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", "wait is a number of seconds", "wait")
				return
			}
			wait = min(max(n, 1), 30)
		}
		failStatus, ok := intParam(q.Get("fail_status"), http.StatusUnauthorized, 400, 499)
		if !ok || (failStatus != 401 && failStatus != 403 && failStatus != 404 && failStatus != 429) {
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", "fail_status must be 401, 403, 404 or 429", "fail_status")
			return
		}
		if s := q.Get("fail_at"); s != "" {
			at, err := parseCursor(s)
			if err != nil {
				writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", "fail_at is a sequence number", "fail_at")
				return
			}
			if poll && cursor >= at {
				code := map[int]string{401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}[failStatus]
				if failStatus == http.StatusTooManyRequests {
					w.Header().Set("Retry-After", "1")
				}
				writeJSON(w, failStatus, map[string]any{"error": map[string]string{
					"code": code, "message": fmt.Sprintf("test stream: refused at cursor %d (fail_at=%d)", cursor, at)}})
				return
			}
		}

		hold, ok := intParam(q.Get("hold_ms"), 0, 0, 1000)
		if !ok {
			writeFieldError(writeJSON, w, http.StatusBadRequest, "invalid", "hold_ms must be 0..1000", "hold_ms")
			return
		}
		ctx := r.Context()
		pollCount := 0
		if poll {
			pollCount = 1
		}
		stmts := append(append([]storage.Stmt(nil), streamSchema...), storage.Stmt{
			// tenant-lookup: the test log is keyed by topic.
			Query: `INSERT INTO test_stream_gets (topic, gets, polls) VALUES (?, 1, ?)
				ON CONFLICT (topic) DO UPDATE SET gets = gets + 1, polls = polls + excluded.polls`,
			Args: []any{topic, pollCount}})
		if _, err := sql.Batch(ctx, stmts); err != nil {
			writeError(w, r, err)
			return
		}
		// One more than a page tells whether more remain.
		// tenant-lookup: the test log is keyed by topic.
		rows, err := sql.Query(ctx, `SELECT seq, type, at, data FROM test_stream_events
			WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`, topic, cursor, page+1)
		if err != nil {
			writeError(w, r, err)
			return
		}
		events := make([]testEvent, 0, min(rows.Len(), page))
		for i := 0; i < rows.Len() && i < page; i++ {
			var e testEvent
			var data string
			if err := rows.Scan(i, &e.Seq, &e.Type, &e.At, &data); err != nil {
				writeError(w, r, err)
				return
			}
			e.Data = json.RawMessage(data)
			events = append(events, e)
		}
		if poll && hold > 0 {
			select {
			case <-time.After(time.Duration(hold) * time.Millisecond):
			case <-ctx.Done():
			}
		}
		last := cursor
		if len(events) > 0 {
			last = events[len(events)-1].Seq
		}

		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set(storage.StreamTopicHeader, topic)
		h.Set(storage.StreamCursorHeader, strconv.FormatInt(last, 10))
		h.Set(storage.StreamModeHeader, mode)
		if rows.Len() > page {
			h.Set(storage.StreamMoreHeader, "1")
		}
		if mode == storage.StreamModeLongPoll {
			if wait > 0 {
				h.Set(storage.StreamWaitHeader, strconv.Itoa(wait))
			}
			writeJSON(w, http.StatusOK, map[string]any{"events": events, "cursor": last})
			return
		}
		var b strings.Builder
		for _, e := range events {
			data, _ := json.Marshal(e)
			fmt.Fprintf(&b, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data)
		}
		h.Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(b.String()))
	})

	mux.HandleFunc("GET /__test/stream-stats/{topic...}", func(w http.ResponseWriter, r *http.Request) {
		topic, ok := topicOf(w, r)
		if !ok {
			return
		}
		ctx := r.Context()
		if _, err := sql.Batch(ctx, streamSchema); err != nil {
			writeError(w, r, err)
			return
		}
		var seq, gets, polls int64
		// tenant-lookup: the test log is keyed by topic.
		rows, err := sql.Query(ctx, `SELECT (SELECT COALESCE(MAX(seq), 0) FROM test_stream_events WHERE topic = ?1),
			COALESCE((SELECT gets FROM test_stream_gets WHERE topic = ?1), 0),
			COALESCE((SELECT polls FROM test_stream_gets WHERE topic = ?1), 0)`, topic)
		if err == nil {
			err = rows.Scan(0, &seq, &gets, &polls)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"seq": seq, "gets": gets, "polls": polls})
	})

	mux.HandleFunc("GET /__test/stream-echo", func(w http.ResponseWriter, r *http.Request) {
		seen := map[string][]string{}
		for name, v := range r.Header {
			if strings.HasPrefix(http.CanonicalHeaderKey(name), storage.StreamHeaderPrefix) || http.CanonicalHeaderKey(name) == "Last-Event-Id" {
				seen[name] = v
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"headers": seen})
	})
}

// requestCursor is the stream's cursor: Last-Event-ID (an SSE client's
// resume, and every re-poll of a home) or else ?after=, else 0.
func requestCursor(r *http.Request) (cursor int64, field string, ok bool) {
	if v := r.Header.Values("Last-Event-ID"); len(v) > 0 {
		c, err := parseCursor(v[0])
		return c, "Last-Event-ID", err == nil && len(v) == 1
	}
	if s, present := r.URL.Query()["after"]; present {
		if len(s) != 1 {
			return 0, "after", false
		}
		c, err := parseCursor(s[0])
		return c, "after", err == nil
	}
	return 0, "", true
}

// parseCursor reads a sequence number: decimal digits only, 0 <= N < 2^53.
func parseCursor(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("cursor %q", s)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("cursor %q", s)
		}
		// Stopping past the bound keeps n from overflowing.
		if n = n*10 + int64(c-'0'); n > maxCursor {
			return 0, fmt.Errorf("cursor %q", s)
		}
	}
	return n, nil
}

func intParam(s string, def, lo, hi int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

func writeFieldError(writeJSON func(http.ResponseWriter, int, any), w http.ResponseWriter, status int, code, msg, field string) {
	e := map[string]string{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	writeJSON(w, status, map[string]any{"error": e})
}
