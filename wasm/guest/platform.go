package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/wasm/abi"
)

// The guest's adapters implement every storage port by forwarding the call
// to the host, which runs the native adapter (SQLite, the KV store, files or
// S3, the key custodian, net/http with its allow-list). They hold no state of
// their own: handles for streams and data keys live in the host and end with
// the export call that made them.

func newPlatform(c *client) storage.Platform {
	return storage.Platform{
		Home:  "local",
		SQL:   sqlPort{c},
		KV:    kvPort{c},
		Blobs: blobsPort{c},
		Keys:  keysPort{c},
		Clock: clockPort{c},
		HTTP:  httpPort{c},
		// argon2id and the limiter's counters run in the host: natively
		// (several times faster than here) and shared by every instance.
		Passwords: passwordsPort{c},
		Limiter:   limiterPort{c},
		// Wake-ups go to the host's hub, which holds the streams.
		Realtime: realtimePort{c},
		// Mail leaves through the host's mail service (SMTP, or its log
		// when none is configured: the host always has one to offer).
		Mail: mailPort{c},
	}
}

// ---- SQL ----

type sqlPort struct{ c *client }

func normalize(args []any) ([]any, error) {
	out := make([]any, len(args))
	for i, a := range args {
		v, err := storage.NormalizeValue(a)
		if err != nil {
			return nil, fmt.Errorf("%w: argument %d: %v", storage.ErrInvalid, i+1, err)
		}
		out[i] = v
	}
	return out, nil
}

func (p sqlPort) Exec(ctx context.Context, query string, args ...any) (storage.Result, error) {
	if err := ctx.Err(); err != nil {
		return storage.Result{}, err
	}
	a, err := normalize(args)
	if err != nil {
		return storage.Result{}, err
	}
	var r abi.SQLResult
	err = p.c.do(abi.OpSQLExec, &abi.SQLExecReq{Query: query, Args: a}, &r)
	return storage.Result{RowsAffected: r.RowsAffected, LastInsertID: r.LastInsertID}, err
}

func (p sqlPort) Query(ctx context.Context, query string, args ...any) (*storage.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := normalize(args)
	if err != nil {
		return nil, err
	}
	var r abi.SQLRows
	if err := p.c.do(abi.OpSQLQuery, &abi.SQLQueryReq{Query: query, Args: a}, &r); err != nil {
		return nil, err
	}
	return &storage.Rows{Columns: r.Columns, Values: r.Rows}, nil
}

func (p sqlPort) Batch(ctx context.Context, stmts []storage.Stmt) ([]storage.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := abi.SQLBatchReq{Stmts: make([]abi.SQLStmt, len(stmts))}
	for i, s := range stmts {
		a, err := normalize(s.Args)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i+1, err)
		}
		req.Stmts[i] = abi.SQLStmt{Query: s.Query, Args: a}
	}
	var r abi.SQLBatchResp
	if err := p.c.do(abi.OpSQLBatch, &req, &r); err != nil {
		return nil, err
	}
	out := make([]storage.Result, len(r.Results))
	for i, x := range r.Results {
		out[i] = storage.Result{RowsAffected: x.RowsAffected, LastInsertID: x.LastInsertID}
	}
	return out, nil
}

// ---- KV ----

type kvPort struct{ c *client }

func (p kvPort) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r abi.KVValue
	if err := p.c.do(abi.OpKVGet, &abi.KVGetReq{Key: key}, &r); err != nil {
		return nil, err
	}
	return r.Value, nil
}

func (p kvPort) Put(ctx context.Context, key string, value []byte, opts storage.KVPutOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.c.do(abi.OpKVPut, &abi.KVPutReq{Key: key, Value: value, TTL: opts.TTL}, &abi.Empty{})
}

func (p kvPort) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.c.do(abi.OpKVDelete, &abi.KVDeleteReq{Key: key}, &abi.Empty{})
}

func (p kvPort) List(ctx context.Context, prefix, cursor string, limit int) (storage.KVList, error) {
	if err := ctx.Err(); err != nil {
		return storage.KVList{}, err
	}
	var r abi.KVList
	err := p.c.do(abi.OpKVList, &abi.KVListReq{Prefix: prefix, Cursor: cursor, Limit: clampInt32(limit)}, &r)
	return storage.KVList{Keys: r.Keys, Cursor: r.Cursor}, err
}

func clampInt32(n int) int { return max(min(n, 1<<31-1), -1<<31) }

// ---- blobs ----

type blobsPort struct{ c *client }

// bulkChunk is how much of a stream crosses in one call: a blob body
// written, a read. Each call costs the guest a fixed amount of work, so
// fewer, larger calls make bulk transfers faster; the buffers it takes are
// kept between calls (keepBuf), so it also bounds the memory an instance
// holds after streaming. Measurements: docs/decisions.md.
const bulkChunk = 1 << 20

// Put streams r to the host. A sealed stream from envelope.SealReader whose
// data key is one of this client's handles is sealed by the host instead
// (blob.put_open_sealed): the guest passes the plaintext in bulk, where it
// would otherwise make one key.seal call per 64 KiB chunk and copy each
// chunk in and out of its memory. The bytes stored are the same
// (envelope.SealStream on both sides).
func (p blobsPort) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.BlobPutOptions) (storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	var h abi.HandleResp
	opened := false
	if src, ok := r.(envelope.PlaintextSource); ok {
		if sp, plain, ok := src.Unsealed(); ok {
			if k, ok := sp.Key.(dataKey); ok && k.c == p.c {
				req := &abi.BlobPutOpenSealedReq{Key: key, Size: size, ContentType: opts.ContentType,
					Seal: abi.SealedStream{Key: k.handle, Prefix: sp.Prefix, AD: sp.AD}}
				// On any failure (an older host answers invalid)
				// the guest seals as before: r is untouched.
				if p.c.do(abi.OpBlobPutOpenSealed, req, &h) == nil {
					r, opened = plain, true
				}
			}
		}
	}
	if !opened {
		if err := p.c.do(abi.OpBlobPutOpen, &abi.BlobPutOpenReq{Key: key, Size: size, ContentType: opts.ContentType}, &h); err != nil {
			return storage.BlobInfo{}, err
		}
	}
	abort := func(err error) (storage.BlobInfo, error) {
		// The put is all-or-nothing: aborting leaves the old object.
		p.c.do(abi.OpBlobPutAbort, &abi.BlobPutAbortReq{Handle: h.Handle}, &abi.Empty{})
		return storage.BlobInfo{}, err
	}
	// One buffer for the whole put. ReadFull fills it before each write,
	// so a body arriving in small reads still crosses in full chunks. A
	// small body of known size gets a buffer its size (plus the byte that
	// reads EOF): a small file does not need a megabyte of garbage.
	buf := make([]byte, bulkChunk)
	if size >= 0 && size < bulkChunk {
		buf = make([]byte, size+1)
	}
	for {
		if err := ctx.Err(); err != nil {
			return abort(err)
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := p.c.do(abi.OpBlobPutWrite, &abi.BlobPutWriteReq{Handle: h.Handle, Data: buf[:n]}, &abi.Empty{}); err != nil {
				return abort(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return abort(rerr)
		}
	}
	var info abi.BlobInfo
	if err := p.c.do(abi.OpBlobPutCommit, &abi.BlobPutCommitReq{Handle: h.Handle}, &info); err != nil {
		return storage.BlobInfo{}, err
	}
	return blobInfo(info), nil
}

func (p blobsPort) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	var r abi.BlobGetResp
	if err := p.c.do(abi.OpBlobGet, &abi.BlobGetReq{Key: key}, &r); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	return &stream{c: p.c, ctx: ctx, handle: r.Handle}, blobInfo(r.Info), nil
}

func (p blobsPort) Head(ctx context.Context, key string) (storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	var info abi.BlobInfo
	if err := p.c.do(abi.OpBlobHead, &abi.BlobHeadReq{Key: key}, &info); err != nil {
		return storage.BlobInfo{}, err
	}
	return blobInfo(info), nil
}

func (p blobsPort) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.c.do(abi.OpBlobDelete, &abi.BlobDeleteReq{Key: key}, &abi.Empty{})
}

func (p blobsPort) List(ctx context.Context, prefix, cursor string, limit int) (storage.BlobList, error) {
	if err := ctx.Err(); err != nil {
		return storage.BlobList{}, err
	}
	var r abi.BlobList
	if err := p.c.do(abi.OpBlobList, &abi.BlobListReq{Prefix: prefix, Cursor: cursor, Limit: clampInt32(limit)}, &r); err != nil {
		return storage.BlobList{}, err
	}
	out := storage.BlobList{Cursor: r.Cursor}
	if len(r.Objects) > 0 {
		out.Objects = make([]storage.BlobInfo, len(r.Objects))
		for i, o := range r.Objects {
			out.Objects[i] = blobInfo(o)
		}
	}
	return out, nil
}

func blobInfo(i abi.BlobInfo) storage.BlobInfo {
	return storage.BlobInfo{Key: i.Key, Size: i.Size, ContentType: i.ContentType, ETag: i.ETag, Modified: i.Modified}
}

// stream reads a host-side reader (a blob, a request body, an outbound
// response body) in chunks. It asks for more than the caller wants so that
// small reads (a JSON decoder's) do not each cost a call.
//
// It allocates nothing per read: the reply is decoded in place
// (doAliased) and copied straight into the caller's buffer, and only what
// the caller had no room for is kept, in a buffer the stream reuses.
//
// A read blocks the whole guest until the host returns (Wasm has one
// thread), so a cancellation can only be seen between reads: ctx is checked
// before each one. Deadlines reach the host with the request.
type stream struct {
	c      *client
	ctx    context.Context // may be nil
	handle uint32
	buf    []byte // data received and not yet returned (in spare)
	spare  []byte // backing store for buf, reused
	eof    bool
	err    error
	closed bool
}

const streamChunk = 256 << 10

func (s *stream) Read(p []byte) (int, error) {
	if len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.eof {
			return 0, io.EOF
		}
		if s.closed {
			return 0, errors.New("read of a closed body")
		}
		if len(p) == 0 {
			return 0, nil
		}
		for len(s.buf) == 0 && !s.eof {
			if s.ctx != nil && s.ctx.Err() != nil {
				s.err = s.ctx.Err()
				return 0, s.err
			}
			want := min(max(len(p), streamChunk), abi.MaxChunk)
			var r abi.ReadResp
			if err := s.c.doAliased(abi.OpRead, &abi.ReadReq{Handle: s.handle, Max: uint32(want)}, &r); err != nil {
				s.err = err
				return 0, err
			}
			s.eof = r.EOF
			// r.Data is the client's reply buffer: take it now.
			n := copy(p, r.Data)
			if n < len(r.Data) {
				s.spare = append(s.spare[:0], r.Data[n:]...)
				s.buf = s.spare
			}
			if n > 0 {
				return n, nil
			}
		}
		if len(s.buf) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// WriteTo copies the rest of the stream to w in bulk chunks, through one
// buffer. io.Copy uses it: without it, io.Copy's 32 KiB buffer would cut a
// blob into small writes, each a host call on the way out.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	// The buffer starts at one ordinary read and doubles while reads fill
	// it, so a small body does not cost a bulk-sized allocation.
	buf := make([]byte, streamChunk)
	var total int64
	for {
		n, err := s.Read(buf)
		if n == len(buf) && len(buf) < bulkChunk {
			next := make([]byte, min(2*len(buf), bulkChunk))
			copy(next, buf[:n])
			buf = next
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m < n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// OpenSealed implements envelope.StreamOpener: the host opens the rest of
// the stream (read.open_sealed) and later reads return plaintext, where the
// guest would otherwise make one key.open call per 64 KiB chunk. It
// declines (and the guest opens the stream itself) if the key is not one of
// this client's handles or the host refuses (an older host answers
// invalid).
func (s *stream) OpenSealed(sp envelope.StreamParams) (io.Reader, bool) {
	k, ok := sp.Key.(dataKey)
	if !ok || k.c != s.c || s.closed || s.err != nil {
		return nil, false
	}
	// What was read ahead past the head goes back to the host, in front
	// of the rest of the stream.
	req := &abi.ReadOpenSealedReq{Handle: s.handle, Seal: abi.SealedStream{Key: k.handle, Prefix: sp.Prefix, AD: sp.AD}, Unread: s.buf}
	if err := s.c.do(abi.OpReadOpenSealed, req, &abi.Empty{}); err != nil {
		return nil, false
	}
	s.buf, s.eof = nil, false
	return s, true
}

func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed, s.buf, s.spare = true, nil, nil
	return s.c.do(abi.OpClose, &abi.CloseReq{Handle: s.handle}, &abi.Empty{})
}

var (
	_ io.WriterTo           = (*stream)(nil)
	_ envelope.StreamOpener = (*stream)(nil)
)

// ---- keys ----

type keysPort struct{ c *client }

func (p keysPort) NewDataKey(ctx context.Context, ad []byte) (storage.DataKey, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var r abi.KeysNewResp
	if err := p.c.do(abi.OpKeysNew, &abi.KeysNewReq{AD: ad}, &r); err != nil {
		return nil, nil, err
	}
	return dataKey{c: p.c, handle: r.Handle}, r.Wrapped, nil
}

func (p keysPort) OpenDataKey(ctx context.Context, wrapped, ad []byte) (storage.DataKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r abi.HandleResp
	if err := p.c.do(abi.OpKeysOpen, &abi.KeysOpenReq{Wrapped: wrapped, AD: ad}, &r); err != nil {
		return nil, err
	}
	return dataKey{c: p.c, handle: r.Handle}, nil
}

func (p keysPort) MAC(ctx context.Context, purpose string, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r abi.BytesResp
	if err := p.c.do(abi.OpKeysMAC, &abi.KeysMACReq{Purpose: purpose, Msg: msg}, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// dataKey is a handle to a data key held by the host's custodian. It is
// valid until the export that made it returns.
type dataKey struct {
	c      *client
	handle uint32
}

func (k dataKey) Seal(dst, nonce, plaintext, ad []byte) ([]byte, error) {
	var r abi.BytesResp
	if err := k.c.do(abi.OpKeySeal, &abi.KeySealReq{Handle: k.handle, Nonce: nonce, Plaintext: plaintext, AD: ad}, &r); err != nil {
		return nil, err
	}
	return append(dst, r.Data...), nil
}

func (k dataKey) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	var r abi.BytesResp
	if err := k.c.do(abi.OpKeyOpen, &abi.KeyOpenReq{Handle: k.handle, Nonce: nonce, Ciphertext: ciphertext, AD: ad}, &r); err != nil {
		return nil, err
	}
	return append(dst, r.Data...), nil
}

// ---- clock ----

// clockPort reads the host's storage.Clock, so a test that moves the host's
// clock moves the application's (session timeouts, TTLs). The Go runtime's
// own clock (time.Now, timers) stays the real one from WASI.
type clockPort struct{ c *client }

func (p clockPort) Now() time.Time {
	var r abi.ClockNow
	if err := p.c.do(abi.OpClockNow, &abi.ClockNowReq{}, &r); err != nil {
		return time.Now().UTC()
	}
	return r.Now
}

// ---- outbound HTTP ----

type httpPort struct{ c *client }

// maxOutboundBody bounds an outbound request body, which crosses whole.
const maxOutboundBody = abi.MaxMessage - 1<<20

func (p httpPort) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxOutboundBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > maxOutboundBody {
			return nil, fmt.Errorf("%w: outbound request body over %d bytes", storage.ErrInvalid, maxOutboundBody)
		}
		body = b
	}
	hdr := req.Header.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if req.Host != "" && req.Host != req.URL.Host {
		hdr.Set("Host", req.Host)
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	var r abi.HTTPDoResp
	err := p.c.do(abi.OpHTTPDo, &abi.HTTPDoReq{Method: req.Method, URL: req.URL.String(), Header: hdr, Body: body, Deadline: deadline}, &r)
	if err != nil {
		return nil, err
	}
	resp := &http.Response{
		Status:        strconv.Itoa(r.Status) + " " + http.StatusText(r.Status),
		StatusCode:    r.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header,
		ContentLength: r.ContentLength,
		Request:       req,
		Body:          http.NoBody,
	}
	if r.Body != 0 {
		resp.Body = &stream{c: p.c, ctx: ctx, handle: r.Body}
	}
	return resp, nil
}

// ---- passwords ----

type passwordsPort struct{ c *client }

func (p passwordsPort) Hash(ctx context.Context, password []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var r abi.PasswordHash
	if err := p.c.do(abi.OpPasswordHash, &abi.PasswordHashReq{Password: password}, &r); err != nil {
		return "", err
	}
	return r.Encoded, nil
}

func (p passwordsPort) Verify(ctx context.Context, encoded string, password []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var r abi.PasswordVerifyResp
	if err := p.c.do(abi.OpPasswordVerify, &abi.PasswordVerifyReq{Encoded: encoded, Password: password}, &r); err != nil {
		return false, err
	}
	return r.Match, nil
}

// ---- rate limiter ----

type limiterPort struct{ c *client }

func (p limiterPort) Allow(ctx context.Context, name, key string) (storage.LimitDecision, error) {
	if err := ctx.Err(); err != nil {
		return storage.LimitDecision{}, err
	}
	var r abi.LimitDecision
	if err := p.c.do(abi.OpLimitAllow, &abi.LimitAllowReq{Name: name, Key: key}, &r); err != nil {
		return storage.LimitDecision{}, err
	}
	return storage.LimitDecision{Allowed: r.Allowed, RetryAfter: r.RetryAfter}, nil
}

// ---- realtime ----

type realtimePort struct{ c *client }

// Publish asks the host to wake the streams held on topic. A host older
// than op realtime.publish answers invalid; the application logs that and
// goes on (a lost wake-up costs latency, never an event).
func (p realtimePort) Publish(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !storage.ValidTopic(topic) {
		return fmt.Errorf("%w: realtime topic %q", storage.ErrInvalid, topic)
	}
	return p.c.do(abi.OpRealtimePublish, &abi.RealtimePublishReq{Topic: topic}, &abi.Empty{})
}

// ---- mail ----

type mailPort struct{ c *client }

// Send hands m to the host's Mailer. A message Check refuses never
// crosses; the host's error classes (invalid: refused for good;
// unavailable: try again) arrive as the same storage sentinels.
func (p mailPort) Send(ctx context.Context, m storage.Mail) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := m.Check(); err != nil {
		return "", err
	}
	var r abi.MailSendResp
	err := p.c.do(abi.OpMailSend, &abi.MailSendReq{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML}, &r)
	return r.ProviderID, err
}

// ---- logging ----

// hostLog is a slog.Handler that writes through the host's log, so guest
// lines carry the host's request id and land where the operator looks.
type hostLog struct {
	c     *client
	attrs []slog.Attr
	group string
}

func (h *hostLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *hostLog) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		b.WriteByte(' ')
		if h.group != "" {
			b.WriteString(h.group + ".")
		}
		b.WriteString(a.Key + "=" + a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	return h.c.do(abi.OpLog, &abi.LogReq{Level: int(r.Level), Message: b.String()}, &abi.Empty{})
}

func (h *hostLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &hostLog{c: h.c, attrs: append(append([]slog.Attr{}, h.attrs...), as...), group: h.group}
}

func (h *hostLog) WithGroup(name string) slog.Handler {
	g := name
	if h.group != "" {
		g = h.group + "." + name
	}
	return &hostLog{c: h.c, attrs: h.attrs, group: g}
}
