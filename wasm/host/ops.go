package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/wasm/abi"
)

// invocation is the state of one export call: the request being served (nil
// for a scheduled run) and the handles the guest has opened. It ends with
// the call; cleanup closes whatever the guest left open.
type invocation struct {
	h        *Host
	inst     *instance
	ctx      context.Context // the ops' context: the request's, with its deadline
	cancel   context.CancelFunc
	id       string
	deadline time.Time
	// pool is where the instance goes back (nil: the request pool).
	pool *pool
	// task names a scheduled run's work (abi.RequestHead.Method).
	task string

	// The HTTP request, when serving one.
	r        *http.Request
	w        http.ResponseWriter
	bodyID   uint32
	tooLarge bool // the body went over MaxBody
	headSent bool
	dropBody bool // the host answered in the guest's place (413, 408)
	// capture holds the answer instead of sending it: a stream's first
	// answer (marked by Pommy-Stream-Topic), or any answer to a poll.
	capture *answer

	// bodyTimedOut: the client stopped sending the body (body.go).
	bodyTimedOut bool

	handles map[uint32]any
	next    uint32
	fail    string // the guest's OpFail message
}

func (h *Host) newInvocation(parent context.Context, id string, deadline time.Time) *invocation {
	ctx, cancel := context.WithDeadline(parent, deadline)
	return &invocation{h: h, ctx: ctx, cancel: cancel, id: id, deadline: deadline, handles: map[uint32]any{}}
}

// The kinds of handle.
type (
	reader struct {
		r      io.Reader
		closer io.Closer // may be nil
		cancel func()    // may be nil
		err    error     // an error to report after data already returned
		eof    bool
		onErr  func(error) // called on a read error
		onEOF  func()      // called when the stream ends
		// fill: a read fills the chunk instead of returning what is at
		// hand. Set for a stream opened by the host, whose opener
		// yields one 64 KiB chunk per Read: returning each alone would
		// cost the guest a call per chunk, the cost the op removes.
		fill bool
	}
	keyHandle struct{ k storage.DataKey }
)

func (inv *invocation) add(v any) (uint32, error) {
	if len(inv.handles) >= abi.MaxHandles {
		return 0, fmt.Errorf("%w: more than %d open handles", storage.ErrInvalid, abi.MaxHandles)
	}
	inv.next++
	if inv.next == 0 {
		inv.next++
	}
	inv.handles[inv.next] = v
	return inv.next, nil
}

func handleOf[T any](inv *invocation, id uint32, kind string) (T, error) {
	v, ok := inv.handles[id].(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("%w: handle %d is not an open %s", storage.ErrInvalid, id, kind)
	}
	return v, nil
}

// cleanup ends the invocation: the ops' context is cancelled, pending puts
// are aborted (so nothing half-written becomes visible) and readers closed.
func (inv *invocation) cleanup() {
	inv.cancel()
	for id, v := range inv.handles {
		switch x := v.(type) {
		case *putHandle:
			x.abort()
		case *reader:
			x.close()
		}
		delete(inv.handles, id)
	}
}

func (r *reader) close() {
	if r.closer != nil {
		r.closer.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
}

var opTable = abi.Ops()

// dispatch decodes a request, performs the op and encodes the reply. It
// never fails: every problem becomes an error reply the guest can read.
func (h *Host) dispatch(ctx context.Context, inv *invocation, op abi.Op, msg []byte) []byte {
	mk, ok := opTable[op]
	if !ok {
		return abi.AppendError(nil, abi.CodeInvalid, fmt.Sprintf("unknown op %d (this host speaks pommy ABI v%d)", uint32(op), abi.Version))
	}
	req := mk[0]()
	if err := abi.Unmarshal(msg, req); err != nil {
		return abi.AppendError(nil, abi.CodeInvalid, op.String()+": "+err.Error())
	}
	var resp abi.Message
	var err error
	if inv != nil {
		resp, err = inv.perform(req)
	} else {
		resp, err = h.performOutside(ctx, req)
	}
	if err != nil {
		return abi.AppendError(nil, codeOf(err), err.Error())
	}
	out, err := abi.AppendReply(nil, resp)
	if err != nil {
		return abi.AppendError(nil, codeOf(err), op.String()+": "+err.Error())
	}
	return out
}

func codeOf(err error) abi.Code {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return abi.CodeTooLarge
	}
	return abi.CodeOf(err)
}

// performOutside serves the few ops that make sense outside an export call
// (during _initialize): logging and the clock.
func (h *Host) performOutside(ctx context.Context, req abi.Message) (abi.Message, error) {
	switch m := req.(type) {
	case *abi.LogReq:
		var id uint64
		if inst := instanceFrom(ctx); inst != nil {
			id = inst.id
		}
		h.log.Log(ctx, slog.Level(m.Level), m.Message, "instance", id)
		return &abi.Empty{}, nil
	case *abi.ClockNowReq:
		return &abi.ClockNow{Now: h.opts.Platform.Clock.Now()}, nil
	}
	return nil, fmt.Errorf("%w: only log and clock.now work outside an export call", storage.ErrInvalid)
}

func unavailable(port string) error {
	return fmt.Errorf("%w: this host has no %s port", storage.ErrUnavailable, port)
}

// perform runs one op for the guest. Each op has its own request type, so
// the type switch is the op switch.
func (inv *invocation) perform(req abi.Message) (abi.Message, error) {
	p := &inv.h.opts.Platform
	ctx := inv.ctx
	empty := &abi.Empty{}
	switch m := req.(type) {

	// ---- the request ----
	case *abi.RequestHeadReq:
		return inv.requestHead(), nil
	case *abi.ResponseHead:
		return empty, inv.responseHead(m)
	case *abi.ResponseWrite:
		return empty, inv.responseWrite(m)

	// ---- streams ----
	case *abi.ReadReq:
		rd, err := handleOf[*reader](inv, m.Handle, "reader")
		if err != nil {
			return nil, err
		}
		return rd.read(m.Max)
	case *abi.CloseReq:
		switch v := inv.handles[m.Handle].(type) {
		case *reader:
			v.close()
		case *keyHandle:
		default:
			return nil, fmt.Errorf("%w: handle %d is not open", storage.ErrInvalid, m.Handle)
		}
		delete(inv.handles, m.Handle)
		return empty, nil

	// ---- SQL ----
	case *abi.SQLExecReq:
		if p.SQL == nil {
			return nil, unavailable("SQL")
		}
		r, err := p.SQL.Exec(ctx, m.Query, m.Args...)
		return &abi.SQLResult{RowsAffected: r.RowsAffected, LastInsertID: r.LastInsertID}, err
	case *abi.SQLQueryReq:
		if p.SQL == nil {
			return nil, unavailable("SQL")
		}
		rows, err := p.SQL.Query(ctx, m.Query, m.Args...)
		if err != nil {
			return nil, err
		}
		return &abi.SQLRows{Columns: rows.Columns, Rows: rows.Values}, nil
	case *abi.SQLBatchReq:
		if p.SQL == nil {
			return nil, unavailable("SQL")
		}
		stmts := make([]storage.Stmt, len(m.Stmts))
		for i, s := range m.Stmts {
			stmts[i] = storage.Stmt{Query: s.Query, Args: s.Args}
		}
		rs, err := p.SQL.Batch(ctx, stmts)
		if err != nil {
			return nil, err
		}
		out := &abi.SQLBatchResp{Results: make([]abi.SQLResult, len(rs))}
		for i, r := range rs {
			out.Results[i] = abi.SQLResult{RowsAffected: r.RowsAffected, LastInsertID: r.LastInsertID}
		}
		return out, nil

	// ---- KV ----
	case *abi.KVGetReq:
		if p.KV == nil {
			return nil, unavailable("KV")
		}
		v, err := p.KV.Get(ctx, m.Key)
		return &abi.KVValue{Value: v}, err
	case *abi.KVPutReq:
		if p.KV == nil {
			return nil, unavailable("KV")
		}
		return empty, p.KV.Put(ctx, m.Key, m.Value, storage.KVPutOptions{TTL: m.TTL})
	case *abi.KVDeleteReq:
		if p.KV == nil {
			return nil, unavailable("KV")
		}
		return empty, p.KV.Delete(ctx, m.Key)
	case *abi.KVListReq:
		if p.KV == nil {
			return nil, unavailable("KV")
		}
		l, err := p.KV.List(ctx, m.Prefix, m.Cursor, m.Limit)
		return &abi.KVList{Keys: l.Keys, Cursor: l.Cursor}, err

	// ---- blobs ----
	case *abi.BlobPutOpenReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		return inv.putOpen(p.Blobs, m.Key, m.Size, m.ContentType, nil)
	case *abi.BlobPutOpenSealedReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		sp, err := inv.streamParams(&m.Seal)
		if err != nil {
			return nil, err
		}
		return inv.putOpen(p.Blobs, m.Key, m.Size, m.ContentType, &sp)
	case *abi.ReadOpenSealedReq:
		rd, err := handleOf[*reader](inv, m.Handle, "reader")
		if err != nil {
			return nil, err
		}
		sp, err := inv.streamParams(&m.Seal)
		if err != nil {
			return nil, err
		}
		return empty, rd.openSealed(sp, m.Unread)
	case *abi.BlobPutWriteReq:
		ph, err := handleOf[*putHandle](inv, m.Handle, "blob put")
		if err != nil {
			return nil, err
		}
		if err := ph.write(m.Data); err != nil {
			// The put has ended early; report its own error.
			delete(inv.handles, m.Handle)
			if perr := ph.abort(); perr != nil {
				return nil, perr
			}
			return nil, err
		}
		return empty, nil
	case *abi.BlobPutCommitReq:
		ph, err := handleOf[*putHandle](inv, m.Handle, "blob put")
		if err != nil {
			return nil, err
		}
		delete(inv.handles, m.Handle)
		res := ph.commit()
		if res.err != nil {
			return nil, res.err
		}
		return toInfo(res.info), nil
	case *abi.BlobPutAbortReq:
		ph, err := handleOf[*putHandle](inv, m.Handle, "blob put")
		if err != nil {
			return nil, err
		}
		delete(inv.handles, m.Handle)
		ph.abort()
		return empty, nil
	case *abi.BlobGetReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		rc, info, err := p.Blobs.Get(ctx, m.Key)
		if err != nil {
			return nil, err
		}
		id, err := inv.add(&reader{r: rc, closer: rc})
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &abi.BlobGetResp{Handle: id, Info: *toInfo(info)}, nil
	case *abi.BlobHeadReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		info, err := p.Blobs.Head(ctx, m.Key)
		if err != nil {
			return nil, err
		}
		return toInfo(info), nil
	case *abi.BlobDeleteReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		return empty, p.Blobs.Delete(ctx, m.Key)
	case *abi.BlobListReq:
		if p.Blobs == nil {
			return nil, unavailable("blob")
		}
		l, err := p.Blobs.List(ctx, m.Prefix, m.Cursor, m.Limit)
		if err != nil {
			return nil, err
		}
		out := &abi.BlobList{Cursor: l.Cursor, Objects: make([]abi.BlobInfo, len(l.Objects))}
		for i, o := range l.Objects {
			out.Objects[i] = *toInfo(o)
		}
		return out, nil

	// ---- keys ----
	case *abi.KeysNewReq:
		if p.Keys == nil {
			return nil, unavailable("keys")
		}
		k, wrapped, err := p.Keys.NewDataKey(ctx, m.AD)
		if err != nil {
			return nil, err
		}
		id, err := inv.add(&keyHandle{k})
		return &abi.KeysNewResp{Handle: id, Wrapped: wrapped}, err
	case *abi.KeysOpenReq:
		if p.Keys == nil {
			return nil, unavailable("keys")
		}
		k, err := p.Keys.OpenDataKey(ctx, m.Wrapped, m.AD)
		if err != nil {
			return nil, err
		}
		id, err := inv.add(&keyHandle{k})
		return &abi.HandleResp{Handle: id}, err
	case *abi.KeySealReq:
		kh, err := handleOf[*keyHandle](inv, m.Handle, "data key")
		if err != nil {
			return nil, err
		}
		out, err := kh.k.Seal(nil, m.Nonce, m.Plaintext, m.AD)
		return &abi.BytesResp{Data: out}, err
	case *abi.KeyOpenReq:
		kh, err := handleOf[*keyHandle](inv, m.Handle, "data key")
		if err != nil {
			return nil, err
		}
		out, err := kh.k.Open(nil, m.Nonce, m.Ciphertext, m.AD)
		return &abi.BytesResp{Data: out}, err
	case *abi.KeysMACReq:
		if p.Keys == nil {
			return nil, unavailable("keys")
		}
		mac, err := p.Keys.MAC(ctx, m.Purpose, m.Msg)
		return &abi.BytesResp{Data: mac}, err

	// ---- outbound HTTP ----
	case *abi.HTTPDoReq:
		if p.HTTP == nil {
			return nil, unavailable("outbound HTTP")
		}
		return inv.httpDo(p.HTTP, m)

	// ---- passwords ----
	// argon2id runs here, natively, several times faster than in the guest
	// (docs/decisions.md). It blocks the guest for its duration (tens of
	// milliseconds), like any op.
	case *abi.PasswordHashReq:
		if p.Passwords == nil {
			return nil, unavailable("passwords")
		}
		enc, err := p.Passwords.Hash(ctx, m.Password)
		return &abi.PasswordHash{Encoded: enc}, err
	case *abi.PasswordVerifyReq:
		if p.Passwords == nil {
			return nil, unavailable("passwords")
		}
		ok, err := p.Passwords.Verify(ctx, m.Encoded, m.Password)
		return &abi.PasswordVerifyResp{Match: ok}, err

	// ---- rate limiter ----
	case *abi.LimitAllowReq:
		if p.Limiter == nil {
			return nil, unavailable("limiter")
		}
		d, err := p.Limiter.Allow(ctx, m.Name, m.Key)
		return &abi.LimitDecision{Allowed: d.Allowed, RetryAfter: d.RetryAfter}, err

	// ---- realtime ----
	case *abi.RealtimePublishReq:
		return empty, inv.h.hub.Publish(ctx, m.Topic)

	// ---- mail ----
	case *abi.MailSendReq:
		return inv.h.sendMail(ctx, m)

	// ---- host services ----
	case *abi.ClockNowReq:
		return &abi.ClockNow{Now: p.Clock.Now()}, nil
	case *abi.LogReq:
		inv.h.log.Log(ctx, slog.Level(m.Level), m.Message, "request", inv.id, "instance", inv.inst.id)
		return empty, nil
	case *abi.FailReq:
		inv.fail = m.Message
		return empty, nil
	}
	return nil, fmt.Errorf("%w: op with request %T is not served", storage.ErrInvalid, req)
}

func toInfo(i storage.BlobInfo) *abi.BlobInfo {
	return &abi.BlobInfo{Key: i.Key, Size: i.Size, ContentType: i.ContentType, ETag: i.ETag, Modified: i.Modified}
}

// read returns up to max bytes (at most abi.MaxChunk). It returns as soon
// as any bytes are available rather than filling the chunk, so that a
// streamed response (an AI provider's tokens) reaches the guest as it comes.
func (r *reader) read(max uint32) (*abi.ReadResp, error) {
	if r.eof {
		return &abi.ReadResp{EOF: true}, nil
	}
	if r.err != nil {
		return nil, r.err
	}
	buf := make([]byte, min(max, abi.MaxChunk))
	if len(buf) == 0 {
		return &abi.ReadResp{}, nil
	}
	var n int
	var err error
	if r.fill {
		n, err = io.ReadFull(r.r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
	}
	for tries := 0; n == 0 && err == nil; tries++ {
		if tries == 100 {
			err = io.ErrNoProgress
			break
		}
		n, err = r.r.Read(buf)
	}
	switch {
	case err == io.EOF:
		r.eof = true
		if r.onEOF != nil {
			r.onEOF()
		}
		return &abi.ReadResp{Data: buf[:n], EOF: true}, nil
	case err != nil:
		if r.onErr != nil {
			r.onErr(err)
		}
		if n > 0 {
			r.err = err
			return &abi.ReadResp{Data: buf[:n]}, nil
		}
		return nil, err
	}
	return &abi.ReadResp{Data: buf[:n]}, nil
}

// streamParams resolves a sealed stream's data-key handle. The guest
// chooses the prefix, as it chooses every nonce it passes to key.seal: it
// gains nothing here it did not have.
func (inv *invocation) streamParams(s *abi.SealedStream) (envelope.StreamParams, error) {
	kh, err := handleOf[*keyHandle](inv, s.Key, "data key")
	if err != nil {
		return envelope.StreamParams{}, err
	}
	if len(s.Prefix) != envelope.PrefixSize {
		return envelope.StreamParams{}, fmt.Errorf("%w: a stream's nonce prefix is %d bytes, not %d", storage.ErrInvalid, envelope.PrefixSize, len(s.Prefix))
	}
	return envelope.StreamParams{Key: kh.k, Prefix: s.Prefix, AD: s.AD}, nil
}

// openSealed makes r a reader of the plaintext of the sealed stream it was
// reading (positioned after the head), with unread (what the guest had
// read ahead) put back in front. Errors the old reader was holding stay
// where they were in the byte stream.
func (r *reader) openSealed(sp envelope.StreamParams, unread []byte) error {
	var rest io.Reader = bytes.NewReader(unread)
	switch {
	case r.err != nil:
		rest = io.MultiReader(rest, errReader{r.err})
	case !r.eof:
		rest = io.MultiReader(rest, r.r)
	}
	pt, err := envelope.OpenStream(sp, rest)
	if err != nil {
		return err
	}
	r.r, r.err, r.eof, r.fill = pt, nil, false, true
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// httpDo sends an outbound request through the platform's HTTPDoer (which
// enforces the egress allow-list) and hands the body back as a reader.
func (inv *invocation) httpDo(doer storage.HTTPDoer, m *abi.HTTPDoReq) (abi.Message, error) {
	ctx, cancel := inv.ctx, context.CancelFunc(func() {})
	if m.Deadline != 0 {
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, m.Deadline))
	}
	req, err := http.NewRequestWithContext(ctx, m.Method, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %v", storage.ErrInvalid, err)
	}
	req.Header = m.Header
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
		req.Header.Del("Host")
	}
	resp, err := doer.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	id, err := inv.add(&reader{r: resp.Body, closer: resp.Body, cancel: cancel})
	if err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	return &abi.HTTPDoResp{Status: resp.StatusCode, Header: resp.Header, ContentLength: resp.ContentLength, Body: id}, nil
}
