package abi

import (
	"fmt"
	"net/http"
	"time"
)

// This file holds one request and one reply type per op (see Ops). Field
// order is wire order. Times travel as Unix nanoseconds (0 for the zero
// time), durations as nanoseconds.

// Empty is the reply of ops that return nothing but a status.
type Empty struct{}

func (*Empty) Encode(*Encoder) {}
func (*Empty) Decode(*Decoder) {}

// ---- the current request -------------------------------------------------

// RequestHeadReq asks for the head of the request being handled.
type RequestHeadReq struct{}

func (*RequestHeadReq) Encode(*Encoder) {}
func (*RequestHeadReq) Decode(*Decoder) {}

// RequestHead is the request as the host's HTTP server parsed it. In
// pommy_v1_scheduled there is no request: Method is empty and only RequestID
// and Deadline are set.
type RequestHead struct {
	Method        string
	RequestURI    string // as on the request line, e.g. "/v1/chat?x=1"
	Host          string
	Proto         string // "HTTP/1.1"
	Header        http.Header
	RemoteAddr    string
	TLS           bool   // the host's listener terminated TLS
	RequestID     string // the host's id for this request, also in its logs
	Deadline      int64  // Unix ns after which the host answers 503
	ContentLength int64  // -1 when unknown
	Body          uint32 // reader handle for the body; 0 when there is none
	MaxBody       int64  // the body limit the host enforces
}

func (m *RequestHead) Encode(e *Encoder) {
	e.String(m.Method)
	e.String(m.RequestURI)
	e.String(m.Host)
	e.String(m.Proto)
	e.Header(m.Header)
	e.String(m.RemoteAddr)
	e.Bool(m.TLS)
	e.String(m.RequestID)
	e.Varint(m.Deadline)
	e.Varint(m.ContentLength)
	e.Uint32(m.Body)
	e.Varint(m.MaxBody)
}

func (m *RequestHead) Decode(d *Decoder) {
	m.Method = d.String()
	m.RequestURI = d.String()
	m.Host = d.String()
	m.Proto = d.String()
	m.Header = d.Header()
	m.RemoteAddr = d.String()
	m.TLS = d.Bool()
	m.RequestID = d.String()
	m.Deadline = d.Varint()
	m.ContentLength = d.Varint()
	m.Body = d.Uint32()
	m.MaxBody = d.Varint()
}

// ResponseHead sends the status and headers, optionally with the first part
// of the body, so that a small response takes a single call. Final says that
// Body is the whole body (the host then sends a Content-Length).
type ResponseHead struct {
	Status int
	Header http.Header
	Body   []byte
	Flush  bool
	Final  bool
}

func (m *ResponseHead) Encode(e *Encoder) {
	e.Int(m.Status)
	e.Header(m.Header)
	e.Bytes(m.Body)
	e.Bool(m.Flush)
	e.Bool(m.Final)
}

func (m *ResponseHead) Decode(d *Decoder) {
	m.Status = d.Int()
	m.Header = d.Header()
	m.Body = d.Bytes()
	m.Flush = d.Bool()
	m.Final = d.Bool()
}

// ResponseWrite sends more of the body; Flush pushes it to the client now
// (server-sent events).
type ResponseWrite struct {
	Data  []byte
	Flush bool
}

func (m *ResponseWrite) Encode(e *Encoder) { e.Bytes(m.Data); e.Bool(m.Flush) }
func (m *ResponseWrite) Decode(d *Decoder) { m.Data = d.Bytes(); m.Flush = d.Bool() }

// ---- streams --------------------------------------------------------------

// ReadReq reads up to Max bytes (the host caps it at MaxChunk) from a reader
// handle.
type ReadReq struct {
	Handle uint32
	Max    uint32
}

func (m *ReadReq) Encode(e *Encoder) { e.Uint32(m.Handle); e.Uint32(m.Max) }
func (m *ReadReq) Decode(d *Decoder) { m.Handle = d.Uint32(); m.Max = d.Uint32() }

// ReadOpenSealedReq turns a reader of a sealed stream, positioned after its
// head, into a reader of its plaintext (envelope.OpenStream), opened by the
// host. Unread is what the guest had already read past the head and not
// used; the host puts it back in front of the rest.
type ReadOpenSealedReq struct {
	Handle uint32
	Seal   SealedStream
	Unread []byte
}

func (m *ReadOpenSealedReq) Encode(e *Encoder) {
	e.Uint32(m.Handle)
	m.Seal.Encode(e)
	e.Bytes(m.Unread)
}
func (m *ReadOpenSealedReq) Decode(d *Decoder) {
	m.Handle = d.Uint32()
	m.Seal.Decode(d)
	m.Unread = d.Bytes()
}

// ReadResp carries the bytes read; EOF is set once the stream is exhausted
// (possibly together with the last bytes).
type ReadResp struct {
	Data []byte
	EOF  bool
}

func (m *ReadResp) Encode(e *Encoder) { e.Bytes(m.Data); e.Bool(m.EOF) }
func (m *ReadResp) Decode(d *Decoder) { m.Data = d.Bytes(); m.EOF = d.Bool() }

// CloseReq releases a reader handle.
type CloseReq struct{ Handle uint32 }

func (m *CloseReq) Encode(e *Encoder) { e.Uint32(m.Handle) }
func (m *CloseReq) Decode(d *Decoder) { m.Handle = d.Uint32() }

// ---- SQL --------------------------------------------------------------------

// SQL values are one tag byte followed by the value.
const (
	valNull  = 0
	valInt   = 1 // zigzag varint
	valFloat = 2 // 8 bytes
	valText  = 3 // length-prefixed
	valBlob  = 4 // length-prefixed
)

// Value encodes one SQL value: nil, int64, float64, string or []byte (the
// SQLite storage classes; callers normalise other types with
// storage.NormalizeValue first). A nil []byte is NULL.
func (e *Encoder) Value(v any) {
	switch x := v.(type) {
	case nil:
		e.Byte(valNull)
	case int64:
		e.Byte(valInt)
		e.Varint(x)
	case float64:
		e.Byte(valFloat)
		e.Float64(x)
	case string:
		e.Byte(valText)
		e.String(x)
	case []byte:
		if x == nil {
			e.Byte(valNull)
			return
		}
		e.Byte(valBlob)
		e.Bytes(x)
	default:
		e.Byte(valNull)
		e.Fail(fmt.Errorf("abi: unsupported SQL value type %T", v))
	}
}

// Value decodes one SQL value.
func (d *Decoder) Value() any {
	switch tag := d.Byte(); tag {
	case valNull:
		return nil
	case valInt:
		return d.Varint()
	case valFloat:
		return d.Float64()
	case valText:
		return d.String()
	case valBlob:
		return d.Bytes()
	default:
		d.Fail("bad value tag %d", tag)
		return nil
	}
}

func (e *Encoder) Values(v []any) {
	e.Uvarint(uint64(len(v)))
	for _, x := range v {
		e.Value(x)
	}
}

func (d *Decoder) Values() []any {
	n := d.Count(1)
	if n == 0 {
		return nil
	}
	out := make([]any, 0, n)
	for range n {
		out = append(out, d.Value())
	}
	return out
}

// SQLExecReq runs one statement that returns no rows.
type SQLExecReq struct {
	Query string
	Args  []any
}

func (m *SQLExecReq) Encode(e *Encoder) { e.String(m.Query); e.Values(m.Args) }
func (m *SQLExecReq) Decode(d *Decoder) { m.Query = d.String(); m.Args = d.Values() }

// SQLResult reports what a write did.
type SQLResult struct {
	RowsAffected int64
	LastInsertID int64
}

func (m *SQLResult) Encode(e *Encoder) { e.Varint(m.RowsAffected); e.Varint(m.LastInsertID) }
func (m *SQLResult) Decode(d *Decoder) { m.RowsAffected = d.Varint(); m.LastInsertID = d.Varint() }

// SQLQueryReq runs one query.
type SQLQueryReq struct {
	Query string
	Args  []any
}

func (m *SQLQueryReq) Encode(e *Encoder) { e.String(m.Query); e.Values(m.Args) }
func (m *SQLQueryReq) Decode(d *Decoder) { m.Query = d.String(); m.Args = d.Values() }

// SQLRows is a whole query result. Every row has exactly len(Columns)
// values, so rows carry no count of their own.
type SQLRows struct {
	Columns []string
	Rows    [][]any
}

func (m *SQLRows) Encode(e *Encoder) {
	e.Strings(m.Columns)
	e.Uvarint(uint64(len(m.Rows)))
	for _, row := range m.Rows {
		if len(row) != len(m.Columns) {
			e.Fail(fmt.Errorf("abi: row has %d values for %d columns", len(row), len(m.Columns)))
		}
		for _, v := range row {
			e.Value(v)
		}
	}
}

func (m *SQLRows) Decode(d *Decoder) {
	m.Columns = d.Strings()
	cols := len(m.Columns)
	n := d.Count(max(cols, 1))
	if n == 0 {
		m.Rows = nil
		return
	}
	m.Rows = make([][]any, 0, n)
	for range n {
		row := make([]any, cols)
		for j := range row {
			row[j] = d.Value()
		}
		if d.Err() != nil {
			return
		}
		m.Rows = append(m.Rows, row)
	}
}

// SQLStmt is one statement of a batch.
type SQLStmt struct {
	Query string
	Args  []any
}

// SQLBatchReq runs statements as one atomic unit.
type SQLBatchReq struct{ Stmts []SQLStmt }

func (m *SQLBatchReq) Encode(e *Encoder) {
	e.Uvarint(uint64(len(m.Stmts)))
	for _, s := range m.Stmts {
		e.String(s.Query)
		e.Values(s.Args)
	}
}

func (m *SQLBatchReq) Decode(d *Decoder) {
	n := d.Count(2)
	m.Stmts = nil
	if n == 0 {
		return
	}
	m.Stmts = make([]SQLStmt, 0, n)
	for range n {
		s := SQLStmt{Query: d.String(), Args: d.Values()}
		m.Stmts = append(m.Stmts, s)
	}
}

// SQLBatchResp has one result per statement.
type SQLBatchResp struct{ Results []SQLResult }

func (m *SQLBatchResp) Encode(e *Encoder) {
	e.Uvarint(uint64(len(m.Results)))
	for i := range m.Results {
		m.Results[i].Encode(e)
	}
}

func (m *SQLBatchResp) Decode(d *Decoder) {
	n := d.Count(2)
	m.Results = nil
	if n == 0 {
		return
	}
	m.Results = make([]SQLResult, n)
	for i := range m.Results {
		m.Results[i].Decode(d)
	}
}

// ---- KV ---------------------------------------------------------------------

type KVGetReq struct{ Key string }

func (m *KVGetReq) Encode(e *Encoder) { e.String(m.Key) }
func (m *KVGetReq) Decode(d *Decoder) { m.Key = d.String() }

type KVValue struct{ Value []byte }

func (m *KVValue) Encode(e *Encoder) { e.Bytes(m.Value) }
func (m *KVValue) Decode(d *Decoder) { m.Value = d.Bytes() }

type KVPutReq struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

func (m *KVPutReq) Encode(e *Encoder) { e.String(m.Key); e.Bytes(m.Value); e.Varint(int64(m.TTL)) }
func (m *KVPutReq) Decode(d *Decoder) {
	m.Key = d.String()
	m.Value = d.Bytes()
	m.TTL = time.Duration(d.Varint())
}

type KVDeleteReq struct{ Key string }

func (m *KVDeleteReq) Encode(e *Encoder) { e.String(m.Key) }
func (m *KVDeleteReq) Decode(d *Decoder) { m.Key = d.String() }

type KVListReq struct {
	Prefix, Cursor string
	Limit          int
}

func (m *KVListReq) Encode(e *Encoder) { e.String(m.Prefix); e.String(m.Cursor); e.Int(m.Limit) }
func (m *KVListReq) Decode(d *Decoder) {
	m.Prefix = d.String()
	m.Cursor = d.String()
	m.Limit = d.Int()
}

type KVList struct {
	Keys   []string
	Cursor string
}

func (m *KVList) Encode(e *Encoder) { e.Strings(m.Keys); e.String(m.Cursor) }
func (m *KVList) Decode(d *Decoder) { m.Keys = d.Strings(); m.Cursor = d.String() }

// ---- blobs ------------------------------------------------------------------

// BlobPutOpenReq starts a streamed, all-or-nothing put. Size is the exact
// length or -1.
type BlobPutOpenReq struct {
	Key         string
	Size        int64
	ContentType string
}

func (m *BlobPutOpenReq) Encode(e *Encoder) {
	e.String(m.Key)
	e.Varint(m.Size)
	e.String(m.ContentType)
}

func (m *BlobPutOpenReq) Decode(d *Decoder) {
	m.Key = d.String()
	m.Size = d.Varint()
	m.ContentType = d.String()
}

// HandleResp returns a new handle.
type HandleResp struct{ Handle uint32 }

func (m *HandleResp) Encode(e *Encoder) { e.Uint32(m.Handle) }
func (m *HandleResp) Decode(d *Decoder) { m.Handle = d.Uint32() }

type BlobPutWriteReq struct {
	Handle uint32
	Data   []byte
}

func (m *BlobPutWriteReq) Encode(e *Encoder) { e.Uint32(m.Handle); e.Bytes(m.Data) }
func (m *BlobPutWriteReq) Decode(d *Decoder) { m.Handle = d.Uint32(); m.Data = d.Bytes() }

// SealedStream names how a stream is sealed: a data-key handle, the
// stream's nonce prefix and its associated data (envelope.StreamParams).
type SealedStream struct {
	Key    uint32 // a data-key handle
	Prefix []byte
	AD     []byte
}

func (m *SealedStream) Encode(e *Encoder) { e.Uint32(m.Key); e.Bytes(m.Prefix); e.Bytes(m.AD) }
func (m *SealedStream) Decode(d *Decoder) { m.Key = d.Uint32(); m.Prefix = d.Bytes(); m.AD = d.Bytes() }

// BlobPutOpenSealedReq starts a put like BlobPutOpenReq whose writes carry
// plaintext: the host seals it as a stream (envelope.SealStream) and stores
// the sealed bytes. Size is the sealed size, or -1.
type BlobPutOpenSealedReq struct {
	Key         string
	Size        int64
	ContentType string
	Seal        SealedStream
}

func (m *BlobPutOpenSealedReq) Encode(e *Encoder) {
	e.String(m.Key)
	e.Varint(m.Size)
	e.String(m.ContentType)
	m.Seal.Encode(e)
}

func (m *BlobPutOpenSealedReq) Decode(d *Decoder) {
	m.Key = d.String()
	m.Size = d.Varint()
	m.ContentType = d.String()
	m.Seal.Decode(d)
}

type BlobPutCommitReq struct{ Handle uint32 }

func (m *BlobPutCommitReq) Encode(e *Encoder) { e.Uint32(m.Handle) }
func (m *BlobPutCommitReq) Decode(d *Decoder) { m.Handle = d.Uint32() }

type BlobPutAbortReq struct{ Handle uint32 }

func (m *BlobPutAbortReq) Encode(e *Encoder) { e.Uint32(m.Handle) }
func (m *BlobPutAbortReq) Decode(d *Decoder) { m.Handle = d.Uint32() }

// BlobInfo mirrors storage.BlobInfo.
type BlobInfo struct {
	Key         string
	Size        int64
	ContentType string
	ETag        string
	Modified    time.Time
}

func (m *BlobInfo) Encode(e *Encoder) {
	e.String(m.Key)
	e.Varint(m.Size)
	e.String(m.ContentType)
	e.String(m.ETag)
	e.Time(m.Modified)
}

func (m *BlobInfo) Decode(d *Decoder) {
	m.Key = d.String()
	m.Size = d.Varint()
	m.ContentType = d.String()
	m.ETag = d.String()
	m.Modified = d.Time()
}

type BlobGetReq struct{ Key string }

func (m *BlobGetReq) Encode(e *Encoder) { e.String(m.Key) }
func (m *BlobGetReq) Decode(d *Decoder) { m.Key = d.String() }

// BlobGetResp returns a reader handle for the body with the object's info.
type BlobGetResp struct {
	Handle uint32
	Info   BlobInfo
}

func (m *BlobGetResp) Encode(e *Encoder) { e.Uint32(m.Handle); m.Info.Encode(e) }
func (m *BlobGetResp) Decode(d *Decoder) { m.Handle = d.Uint32(); m.Info.Decode(d) }

type BlobHeadReq struct{ Key string }

func (m *BlobHeadReq) Encode(e *Encoder) { e.String(m.Key) }
func (m *BlobHeadReq) Decode(d *Decoder) { m.Key = d.String() }

type BlobDeleteReq struct{ Key string }

func (m *BlobDeleteReq) Encode(e *Encoder) { e.String(m.Key) }
func (m *BlobDeleteReq) Decode(d *Decoder) { m.Key = d.String() }

type BlobListReq struct {
	Prefix, Cursor string
	Limit          int
}

func (m *BlobListReq) Encode(e *Encoder) { e.String(m.Prefix); e.String(m.Cursor); e.Int(m.Limit) }
func (m *BlobListReq) Decode(d *Decoder) {
	m.Prefix = d.String()
	m.Cursor = d.String()
	m.Limit = d.Int()
}

type BlobList struct {
	Objects []BlobInfo
	Cursor  string
}

func (m *BlobList) Encode(e *Encoder) {
	e.Uvarint(uint64(len(m.Objects)))
	for i := range m.Objects {
		m.Objects[i].Encode(e)
	}
	e.String(m.Cursor)
}

func (m *BlobList) Decode(d *Decoder) {
	n := d.Count(5) // four empty strings and a zero time at least
	m.Objects = nil
	if n > 0 {
		m.Objects = make([]BlobInfo, n)
		for i := range m.Objects {
			m.Objects[i].Decode(d)
		}
	}
	m.Cursor = d.String()
}

// ---- keys -------------------------------------------------------------------

// KeysNewReq makes a data key; AD binds its wrapped form.
type KeysNewReq struct{ AD []byte }

func (m *KeysNewReq) Encode(e *Encoder) { e.Bytes(m.AD) }
func (m *KeysNewReq) Decode(d *Decoder) { m.AD = d.Bytes() }

// KeysNewResp returns a handle to the new key and its wrapped form, which
// the application stores.
type KeysNewResp struct {
	Handle  uint32
	Wrapped []byte
}

func (m *KeysNewResp) Encode(e *Encoder) { e.Uint32(m.Handle); e.Bytes(m.Wrapped) }
func (m *KeysNewResp) Decode(d *Decoder) { m.Handle = d.Uint32(); m.Wrapped = d.Bytes() }

// KeysOpenReq unwraps a data key into a handle.
type KeysOpenReq struct{ Wrapped, AD []byte }

func (m *KeysOpenReq) Encode(e *Encoder) { e.Bytes(m.Wrapped); e.Bytes(m.AD) }
func (m *KeysOpenReq) Decode(d *Decoder) { m.Wrapped = d.Bytes(); m.AD = d.Bytes() }

// KeySealReq seals with the data key behind Handle.
type KeySealReq struct {
	Handle               uint32
	Nonce, Plaintext, AD []byte
}

func (m *KeySealReq) Encode(e *Encoder) {
	e.Uint32(m.Handle)
	e.Bytes(m.Nonce)
	e.Bytes(m.Plaintext)
	e.Bytes(m.AD)
}

func (m *KeySealReq) Decode(d *Decoder) {
	m.Handle = d.Uint32()
	m.Nonce = d.Bytes()
	m.Plaintext = d.Bytes()
	m.AD = d.Bytes()
}

// KeyOpenReq opens with the data key behind Handle.
type KeyOpenReq struct {
	Handle                uint32
	Nonce, Ciphertext, AD []byte
}

func (m *KeyOpenReq) Encode(e *Encoder) {
	e.Uint32(m.Handle)
	e.Bytes(m.Nonce)
	e.Bytes(m.Ciphertext)
	e.Bytes(m.AD)
}

func (m *KeyOpenReq) Decode(d *Decoder) {
	m.Handle = d.Uint32()
	m.Nonce = d.Bytes()
	m.Ciphertext = d.Bytes()
	m.AD = d.Bytes()
}

// KeysMACReq asks for HMAC-SHA256 of Msg under the purpose's derived key.
type KeysMACReq struct {
	Purpose string
	Msg     []byte
}

func (m *KeysMACReq) Encode(e *Encoder) { e.String(m.Purpose); e.Bytes(m.Msg) }
func (m *KeysMACReq) Decode(d *Decoder) { m.Purpose = d.String(); m.Msg = d.Bytes() }

// BytesResp carries a byte result (ciphertext, plaintext, MAC).
type BytesResp struct{ Data []byte }

func (m *BytesResp) Encode(e *Encoder) { e.Bytes(m.Data) }
func (m *BytesResp) Decode(d *Decoder) { m.Data = d.Bytes() }

// ---- outbound HTTP ---------------------------------------------------------

// HTTPDoReq sends an outbound request. The body travels whole (it is bounded
// by MaxMessage); the response body streams back through a reader handle.
type HTTPDoReq struct {
	Method   string
	URL      string
	Header   http.Header
	Body     []byte
	Deadline int64 // Unix ns from the request's context, 0 for none
}

func (m *HTTPDoReq) Encode(e *Encoder) {
	e.String(m.Method)
	e.String(m.URL)
	e.Header(m.Header)
	e.Bytes(m.Body)
	e.Varint(m.Deadline)
}

func (m *HTTPDoReq) Decode(d *Decoder) {
	m.Method = d.String()
	m.URL = d.String()
	m.Header = d.Header()
	m.Body = d.Bytes()
	m.Deadline = d.Varint()
}

type HTTPDoResp struct {
	Status        int
	Header        http.Header
	ContentLength int64
	Body          uint32 // reader handle
}

func (m *HTTPDoResp) Encode(e *Encoder) {
	e.Int(m.Status)
	e.Header(m.Header)
	e.Varint(m.ContentLength)
	e.Uint32(m.Body)
}

func (m *HTTPDoResp) Decode(d *Decoder) {
	m.Status = d.Int()
	m.Header = d.Header()
	m.ContentLength = d.Varint()
	m.Body = d.Uint32()
}

// ---- host services ----------------------------------------------------------

type ClockNowReq struct{}

func (*ClockNowReq) Encode(*Encoder) {}
func (*ClockNowReq) Decode(*Decoder) {}

// ClockNow is the host's storage.Clock reading (tests may move it).
type ClockNow struct{ Now time.Time }

func (m *ClockNow) Encode(e *Encoder) { e.Time(m.Now) }
func (m *ClockNow) Decode(d *Decoder) { m.Now = d.Time() }

// LogReq writes a line to the host's log. Level is a log/slog level.
type LogReq struct {
	Level   int
	Message string
}

func (m *LogReq) Encode(e *Encoder) { e.Int(m.Level); e.String(m.Message) }
func (m *LogReq) Decode(d *Decoder) { m.Level = d.Int(); m.Message = d.String() }

// FailReq tells the host why the current export is about to return
// ResultFailed or ResultCrashed (an error from scheduled work, a panic and
// its stack).
type FailReq struct{ Message string }

func (m *FailReq) Encode(e *Encoder) { e.String(m.Message) }
func (m *FailReq) Decode(d *Decoder) { m.Message = d.String() }

// ---- passwords ----------------------------------------------------------------

// PasswordHashReq asks the host to hash a password with argon2id under a
// fresh salt.
type PasswordHashReq struct{ Password []byte }

func (m *PasswordHashReq) Encode(e *Encoder) { e.Bytes(m.Password) }
func (m *PasswordHashReq) Decode(d *Decoder) { m.Password = d.Bytes() }

// PasswordHash is the PHC string of the hash.
type PasswordHash struct{ Encoded string }

func (m *PasswordHash) Encode(e *Encoder) { e.String(m.Encoded) }
func (m *PasswordHash) Decode(d *Decoder) { m.Encoded = d.String() }

// PasswordVerifyReq asks whether Password matches the PHC string Encoded.
type PasswordVerifyReq struct {
	Encoded  string
	Password []byte
}

func (m *PasswordVerifyReq) Encode(e *Encoder) { e.String(m.Encoded); e.Bytes(m.Password) }
func (m *PasswordVerifyReq) Decode(d *Decoder) { m.Encoded = d.String(); m.Password = d.Bytes() }

// PasswordVerifyResp is the answer; a malformed Encoded is an invalid
// error reply instead.
type PasswordVerifyResp struct{ Match bool }

func (m *PasswordVerifyResp) Encode(e *Encoder) { e.Bool(m.Match) }
func (m *PasswordVerifyResp) Decode(d *Decoder) { m.Match = d.Bool() }

// ---- rate limiter -------------------------------------------------------------

// LimitAllowReq counts one event for Key against the limit Name.
type LimitAllowReq struct{ Name, Key string }

func (m *LimitAllowReq) Encode(e *Encoder) { e.String(m.Name); e.String(m.Key) }
func (m *LimitAllowReq) Decode(d *Decoder) { m.Name = d.String(); m.Key = d.String() }

// LimitDecision mirrors storage.LimitDecision; RetryAfter is in
// nanoseconds, 0 when allowed.
type LimitDecision struct {
	Allowed    bool
	RetryAfter time.Duration
}

func (m *LimitDecision) Encode(e *Encoder) { e.Bool(m.Allowed); e.Varint(int64(m.RetryAfter)) }
func (m *LimitDecision) Decode(d *Decoder) {
	m.Allowed = d.Bool()
	m.RetryAfter = time.Duration(d.Varint())
}

// RealtimePublishReq wakes the streams the host holds on Topic
// (storage.Realtime.Publish). The host refuses a topic that
// storage.ValidTopic refuses.
type RealtimePublishReq struct{ Topic string }

func (m *RealtimePublishReq) Encode(e *Encoder) { e.String(m.Topic) }
func (m *RealtimePublishReq) Decode(d *Decoder) { m.Topic = d.String() }

// MailSendReq hands one message to the host's mail service
// (storage.Mailer.Send with a storage.Mail of the same fields). The host
// refuses what storage.Mail.Check refuses with invalid.
type MailSendReq struct {
	ID, To, Subject, Text, HTML string
}

func (m *MailSendReq) Encode(e *Encoder) {
	e.String(m.ID)
	e.String(m.To)
	e.String(m.Subject)
	e.String(m.Text)
	e.String(m.HTML)
}

func (m *MailSendReq) Decode(d *Decoder) {
	m.ID = d.String()
	m.To = d.String()
	m.Subject = d.String()
	m.Text = d.String()
	m.HTML = d.String()
}

// MailSendResp is the mail service's id for the accepted message.
type MailSendResp struct{ ProviderID string }

func (m *MailSendResp) Encode(e *Encoder) { e.String(m.ProviderID) }
func (m *MailSendResp) Decode(d *Decoder) { m.ProviderID = d.String() }

// ---- time -------------------------------------------------------------------

// Time encodes t as Unix nanoseconds, the zero time as 0.
func (e *Encoder) Time(t time.Time) {
	if t.IsZero() {
		e.Varint(0)
		return
	}
	e.Varint(t.UnixNano())
}

// Time decodes a time in UTC.
func (d *Decoder) Time() time.Time {
	n := d.Varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
