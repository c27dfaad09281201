// Package abi is the contract between the wasip1 guest (wasm/guest) and the
// native host (wasm/host): the names of the imported and exported functions,
// the operation codes, the status codes, and the binary codec of every
// message that crosses the boundary.
//
// Both sides import this package, so there is exactly one definition of the
// wire format. It is pure Go (no wazero, no syscall), builds for wasip1, js
// and native targets, and its decoder treats every input as hostile: no
// length or count is used before it has been checked against the bytes that
// remain. ABI.md beside this file is the human-readable specification; keep
// the two in step.
package abi

import "strconv"

// Version is the ABI version. The host refuses a module whose
// pommy_v1_abi_version export returns anything else. Any change to a message
// layout, an op's meaning or a function signature bumps it (and, for an
// incompatible change, the import module name).
const Version = 1

// Names of the imported host module and its functions.
const (
	ImportModule = "pommy_v1"
	ImportCall   = "call"
	ImportTake   = "take"
)

// Names of the functions the guest exports.
const (
	ExportABIVersion = "pommy_v1_abi_version"
	ExportHandle     = "pommy_v1_handle"
	ExportScheduled  = "pommy_v1_scheduled"
	// ExportInitialize is the reactor's runtime initialiser, emitted by
	// `go build -buildmode=c-shared`; the host runs it once per instance.
	ExportInitialize = "_initialize"
)

// Tasks of pommy_v1_scheduled, passed as RequestHead.Method (empty for the
// periodic work). A guest that does not know a task runs the periodic
// work, which also runs due jobs, so an older guest stays correct.
const (
	// TaskJobs runs due background jobs until none is due or the
	// invocation's deadline nears.
	TaskJobs = "jobs"
)

// Results of the guest's pommy_v1_handle and pommy_v1_scheduled exports.
const (
	// ResultOK: the export finished normally.
	ResultOK int32 = 0
	// ResultFailed: scheduled work returned an error (reported with OpFail);
	// the instance is healthy.
	ResultFailed int32 = 1
	// ResultCrashed: the guest recovered from a panic. Its state may be
	// inconsistent (a held lock, a half-built cache), so the host discards
	// the instance exactly as after a trap.
	ResultCrashed int32 = 2
)

// Negative results of call and take. They mean the guest broke the ABI (a
// pointer outside its memory, an oversize message, a take without a pending
// reply). The guest treats them as fatal, and the host discards the instance
// once the export returns.
const (
	ErrInOutOfRange  int64 = -1 // in_ptr/in_len outside guest memory
	ErrInTooLarge    int64 = -2 // in_len > MaxMessage
	ErrOutOutOfRange int64 = -3 // out_ptr/out_cap (or take's range) outside guest memory
	ErrNoPending     int64 = -4 // take without a pending reply, or with the wrong length
)

// MaxMessage caps every message in both directions (32 MiB). It leaves room
// for the largest KV value (25 MiB) plus framing. A reply that would exceed
// it is replaced by a CodeTooLarge error.
const MaxMessage = 32 << 20

// MaxChunk caps the data returned by one OpRead (1 MiB). Streams are read in
// chunks so that neither side holds a whole body.
const MaxChunk = 1 << 20

// MaxHandles caps the handles (readers, pending puts, data keys) one export
// invocation may hold at once, so a guest cannot exhaust host resources.
const MaxHandles = 1024

// Op selects what a call does. Each op has one request message type and one
// reply message type, listed in ABI.md and in Ops. The numbers are wire
// values: never reuse or renumber one within a version.
type Op uint32

const (
	opInvalid Op = 0

	// The current request (pommy_v1_handle only).
	OpRequestHead   Op = 1 // RequestHeadReq -> RequestHead
	OpResponseHead  Op = 2 // ResponseHead -> Empty
	OpResponseWrite Op = 3 // ResponseWrite -> Empty

	// Streams: request bodies, blob bodies, outbound HTTP response bodies.
	OpRead  Op = 4 // ReadReq -> ReadResp
	OpClose Op = 5 // CloseReq -> Empty

	// SQL.
	OpSQLExec  Op = 6 // SQLExecReq -> SQLResult
	OpSQLQuery Op = 7 // SQLQueryReq -> SQLRows
	OpSQLBatch Op = 8 // SQLBatchReq -> SQLBatchResp

	// KV.
	OpKVGet    Op = 9  // KVGetReq -> KVValue
	OpKVPut    Op = 10 // KVPutReq -> Empty
	OpKVDelete Op = 11 // KVDeleteReq -> Empty
	OpKVList   Op = 12 // KVListReq -> KVList

	// Blobs.
	OpBlobPutOpen   Op = 13 // BlobPutOpenReq -> HandleResp
	OpBlobPutWrite  Op = 14 // BlobPutWriteReq -> Empty
	OpBlobPutCommit Op = 15 // BlobPutCommitReq -> BlobInfo
	OpBlobPutAbort  Op = 16 // BlobPutAbortReq -> Empty
	OpBlobGet       Op = 17 // BlobGetReq -> BlobGetResp (then OpRead/OpClose)
	OpBlobHead      Op = 18 // BlobHeadReq -> BlobInfo
	OpBlobDelete    Op = 19 // BlobDeleteReq -> Empty
	OpBlobList      Op = 20 // BlobListReq -> BlobList

	// Keys. Key material never leaves the host: the guest holds handles.
	OpKeysNew  Op = 21 // KeysNewReq -> KeysNewResp
	OpKeysOpen Op = 22 // KeysOpenReq -> HandleResp
	OpKeySeal  Op = 23 // KeySealReq -> BytesResp
	OpKeyOpen  Op = 24 // KeyOpenReq -> BytesResp
	OpKeysMAC  Op = 25 // KeysMACReq -> BytesResp

	// Outbound HTTP.
	OpHTTPDo Op = 26 // HTTPDoReq -> HTTPDoResp (then OpRead/OpClose on the body)

	// Host services.
	OpClockNow Op = 27 // ClockNowReq -> ClockNow
	OpLog      Op = 28 // LogReq -> Empty
	OpFail     Op = 29 // FailReq -> Empty

	// Passwords (argon2id, computed natively by the host).
	OpPasswordHash   Op = 30 // PasswordHashReq -> PasswordHash
	OpPasswordVerify Op = 31 // PasswordVerifyReq -> PasswordVerifyResp

	// Rate limiter.
	OpLimitAllow Op = 32 // LimitAllowReq -> LimitDecision

	// Sealed streams, sealed and opened natively by the host (the
	// envelope package's STREAM format) instead of one key.seal/key.open
	// call per 64 KiB chunk from the guest.
	OpBlobPutOpenSealed Op = 33 // BlobPutOpenSealedReq -> HandleResp (then OpBlobPutWrite... with plaintext)
	OpReadOpenSealed    Op = 34 // ReadOpenSealedReq -> Empty (then OpRead yields plaintext)

	// Realtime: a wake-up for the streams the host holds on a topic.
	OpRealtimePublish Op = 35 // RealtimePublishReq -> Empty

	// Mail: hands one message to the host's mail service (storage.Mailer).
	OpMailSend Op = 36 // MailSendReq -> MailSendResp

	opEnd Op = 37 // one past the last op
)

var opNames = [...]string{
	opInvalid:           "invalid",
	OpRequestHead:       "request.head",
	OpResponseHead:      "response.head",
	OpResponseWrite:     "response.write",
	OpRead:              "read",
	OpClose:             "close",
	OpSQLExec:           "sql.exec",
	OpSQLQuery:          "sql.query",
	OpSQLBatch:          "sql.batch",
	OpKVGet:             "kv.get",
	OpKVPut:             "kv.put",
	OpKVDelete:          "kv.delete",
	OpKVList:            "kv.list",
	OpBlobPutOpen:       "blob.put_open",
	OpBlobPutWrite:      "blob.put_write",
	OpBlobPutCommit:     "blob.put_commit",
	OpBlobPutAbort:      "blob.put_abort",
	OpBlobGet:           "blob.get",
	OpBlobHead:          "blob.head",
	OpBlobDelete:        "blob.delete",
	OpBlobList:          "blob.list",
	OpKeysNew:           "keys.new",
	OpKeysOpen:          "keys.open",
	OpKeySeal:           "key.seal",
	OpKeyOpen:           "key.open",
	OpKeysMAC:           "keys.mac",
	OpHTTPDo:            "http.do",
	OpClockNow:          "clock.now",
	OpLog:               "log",
	OpFail:              "fail",
	OpPasswordHash:      "password.hash",
	OpPasswordVerify:    "password.verify",
	OpLimitAllow:        "limit.allow",
	OpBlobPutOpenSealed: "blob.put_open_sealed",
	OpReadOpenSealed:    "read.open_sealed",
	OpRealtimePublish:   "realtime.publish",
	OpMailSend:          "mail.send",
}

func (o Op) String() string {
	if o < opEnd {
		return opNames[o]
	}
	return "op(" + strconv.FormatUint(uint64(o), 10) + ")"
}

// Valid reports whether o is an op of this ABI version.
func (o Op) Valid() bool { return o > opInvalid && o < opEnd }

// Ops lists, for every op, a fresh request and reply message. The host's
// dispatcher and the fuzz tests are driven by it, so a new op cannot be
// added without its codec being fuzzed.
func Ops() map[Op][2]func() Message {
	return map[Op][2]func() Message{
		OpRequestHead:       {func() Message { return new(RequestHeadReq) }, func() Message { return new(RequestHead) }},
		OpResponseHead:      {func() Message { return new(ResponseHead) }, func() Message { return new(Empty) }},
		OpResponseWrite:     {func() Message { return new(ResponseWrite) }, func() Message { return new(Empty) }},
		OpRead:              {func() Message { return new(ReadReq) }, func() Message { return new(ReadResp) }},
		OpClose:             {func() Message { return new(CloseReq) }, func() Message { return new(Empty) }},
		OpSQLExec:           {func() Message { return new(SQLExecReq) }, func() Message { return new(SQLResult) }},
		OpSQLQuery:          {func() Message { return new(SQLQueryReq) }, func() Message { return new(SQLRows) }},
		OpSQLBatch:          {func() Message { return new(SQLBatchReq) }, func() Message { return new(SQLBatchResp) }},
		OpKVGet:             {func() Message { return new(KVGetReq) }, func() Message { return new(KVValue) }},
		OpKVPut:             {func() Message { return new(KVPutReq) }, func() Message { return new(Empty) }},
		OpKVDelete:          {func() Message { return new(KVDeleteReq) }, func() Message { return new(Empty) }},
		OpKVList:            {func() Message { return new(KVListReq) }, func() Message { return new(KVList) }},
		OpBlobPutOpen:       {func() Message { return new(BlobPutOpenReq) }, func() Message { return new(HandleResp) }},
		OpBlobPutWrite:      {func() Message { return new(BlobPutWriteReq) }, func() Message { return new(Empty) }},
		OpBlobPutCommit:     {func() Message { return new(BlobPutCommitReq) }, func() Message { return new(BlobInfo) }},
		OpBlobPutAbort:      {func() Message { return new(BlobPutAbortReq) }, func() Message { return new(Empty) }},
		OpBlobGet:           {func() Message { return new(BlobGetReq) }, func() Message { return new(BlobGetResp) }},
		OpBlobHead:          {func() Message { return new(BlobHeadReq) }, func() Message { return new(BlobInfo) }},
		OpBlobDelete:        {func() Message { return new(BlobDeleteReq) }, func() Message { return new(Empty) }},
		OpBlobList:          {func() Message { return new(BlobListReq) }, func() Message { return new(BlobList) }},
		OpKeysNew:           {func() Message { return new(KeysNewReq) }, func() Message { return new(KeysNewResp) }},
		OpKeysOpen:          {func() Message { return new(KeysOpenReq) }, func() Message { return new(HandleResp) }},
		OpKeySeal:           {func() Message { return new(KeySealReq) }, func() Message { return new(BytesResp) }},
		OpKeyOpen:           {func() Message { return new(KeyOpenReq) }, func() Message { return new(BytesResp) }},
		OpKeysMAC:           {func() Message { return new(KeysMACReq) }, func() Message { return new(BytesResp) }},
		OpHTTPDo:            {func() Message { return new(HTTPDoReq) }, func() Message { return new(HTTPDoResp) }},
		OpClockNow:          {func() Message { return new(ClockNowReq) }, func() Message { return new(ClockNow) }},
		OpLog:               {func() Message { return new(LogReq) }, func() Message { return new(Empty) }},
		OpFail:              {func() Message { return new(FailReq) }, func() Message { return new(Empty) }},
		OpPasswordHash:      {func() Message { return new(PasswordHashReq) }, func() Message { return new(PasswordHash) }},
		OpPasswordVerify:    {func() Message { return new(PasswordVerifyReq) }, func() Message { return new(PasswordVerifyResp) }},
		OpLimitAllow:        {func() Message { return new(LimitAllowReq) }, func() Message { return new(LimitDecision) }},
		OpBlobPutOpenSealed: {func() Message { return new(BlobPutOpenSealedReq) }, func() Message { return new(HandleResp) }},
		OpReadOpenSealed:    {func() Message { return new(ReadOpenSealedReq) }, func() Message { return new(Empty) }},
		OpRealtimePublish:   {func() Message { return new(RealtimePublishReq) }, func() Message { return new(Empty) }},
		OpMailSend:          {func() Message { return new(MailSendReq) }, func() Message { return new(MailSendResp) }},
	}
}
