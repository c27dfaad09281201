package abi

import (
	"bytes"
	"errors"
	"testing"
)

// The decoder faces bytes written by the guest, which the host must treat as
// hostile. Each message type has a fuzz target: decoding arbitrary bytes
// must fail with ErrMalformed or succeed, never panic or hang, and a decoded
// message must re-encode to a canonical form that decodes to itself.
//
// Under plain `go test` the seeds run as ordinary tests: every example
// message, each of its prefixes, and a few corruptions. To fuzz one target:
//
//	go test ./wasm/abi -run '^$' -fuzz '^FuzzDecodeSQLRows$' -fuzztime 30s

func fuzzDecode[T any, PT interface {
	*T
	Message
}](f *testing.F) {
	for _, m := range examples() {
		if _, ok := m.(PT); !ok {
			continue
		}
		b, err := Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for i := 0; i < len(b); i += 1 + len(b)/8 {
			f.Add(b[:i])
			flipped := bytes.Clone(b)
			flipped[i] ^= 0xFF
			f.Add(flipped)
		}
		f.Add(append(bytes.Clone(b), 0x80)) // a dangling varint
	}
	f.Add([]byte{})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m T
		if err := Unmarshal(b, PT(&m)); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		enc, err := Marshal(PT(&m))
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		var m2 T
		if err := Unmarshal(enc, PT(&m2)); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		enc2, err := Marshal(PT(&m2))
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %x vs %x (%v)", enc, enc2, err)
		}
	})
}

// FuzzDecodeReply covers the reply framing (status byte, error message).
func FuzzDecodeReply(f *testing.F) {
	ok, _ := AppendReply(nil, &KVValue{Value: []byte("v")})
	f.Add(ok)
	f.Add(AppendError(nil, CodeNotFound, "missing"))
	f.Add([]byte{byte(codeEnd)})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v KVValue
		err := DecodeReply(b, &v)
		var e *Error
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.As(err, &e) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	})
}

func FuzzDecodeEmpty(f *testing.F)                { fuzzDecode[Empty](f) }
func FuzzDecodeRequestHeadReq(f *testing.F)       { fuzzDecode[RequestHeadReq](f) }
func FuzzDecodeRequestHead(f *testing.F)          { fuzzDecode[RequestHead](f) }
func FuzzDecodeResponseHead(f *testing.F)         { fuzzDecode[ResponseHead](f) }
func FuzzDecodeResponseWrite(f *testing.F)        { fuzzDecode[ResponseWrite](f) }
func FuzzDecodeReadReq(f *testing.F)              { fuzzDecode[ReadReq](f) }
func FuzzDecodeReadResp(f *testing.F)             { fuzzDecode[ReadResp](f) }
func FuzzDecodeCloseReq(f *testing.F)             { fuzzDecode[CloseReq](f) }
func FuzzDecodeSQLExecReq(f *testing.F)           { fuzzDecode[SQLExecReq](f) }
func FuzzDecodeSQLResult(f *testing.F)            { fuzzDecode[SQLResult](f) }
func FuzzDecodeSQLQueryReq(f *testing.F)          { fuzzDecode[SQLQueryReq](f) }
func FuzzDecodeSQLRows(f *testing.F)              { fuzzDecode[SQLRows](f) }
func FuzzDecodeSQLBatchReq(f *testing.F)          { fuzzDecode[SQLBatchReq](f) }
func FuzzDecodeSQLBatchResp(f *testing.F)         { fuzzDecode[SQLBatchResp](f) }
func FuzzDecodeKVGetReq(f *testing.F)             { fuzzDecode[KVGetReq](f) }
func FuzzDecodeKVValue(f *testing.F)              { fuzzDecode[KVValue](f) }
func FuzzDecodeKVPutReq(f *testing.F)             { fuzzDecode[KVPutReq](f) }
func FuzzDecodeKVDeleteReq(f *testing.F)          { fuzzDecode[KVDeleteReq](f) }
func FuzzDecodeKVListReq(f *testing.F)            { fuzzDecode[KVListReq](f) }
func FuzzDecodeKVList(f *testing.F)               { fuzzDecode[KVList](f) }
func FuzzDecodeBlobPutOpenReq(f *testing.F)       { fuzzDecode[BlobPutOpenReq](f) }
func FuzzDecodeHandleResp(f *testing.F)           { fuzzDecode[HandleResp](f) }
func FuzzDecodeBlobPutWriteReq(f *testing.F)      { fuzzDecode[BlobPutWriteReq](f) }
func FuzzDecodeBlobPutOpenSealedReq(f *testing.F) { fuzzDecode[BlobPutOpenSealedReq](f) }
func FuzzDecodeReadOpenSealedReq(f *testing.F)    { fuzzDecode[ReadOpenSealedReq](f) }
func FuzzDecodeBlobPutCommitReq(f *testing.F)     { fuzzDecode[BlobPutCommitReq](f) }
func FuzzDecodeBlobPutAbortReq(f *testing.F)      { fuzzDecode[BlobPutAbortReq](f) }
func FuzzDecodeBlobInfo(f *testing.F)             { fuzzDecode[BlobInfo](f) }
func FuzzDecodeBlobGetReq(f *testing.F)           { fuzzDecode[BlobGetReq](f) }
func FuzzDecodeBlobGetResp(f *testing.F)          { fuzzDecode[BlobGetResp](f) }
func FuzzDecodeBlobHeadReq(f *testing.F)          { fuzzDecode[BlobHeadReq](f) }
func FuzzDecodeBlobDeleteReq(f *testing.F)        { fuzzDecode[BlobDeleteReq](f) }
func FuzzDecodeBlobListReq(f *testing.F)          { fuzzDecode[BlobListReq](f) }
func FuzzDecodeBlobList(f *testing.F)             { fuzzDecode[BlobList](f) }
func FuzzDecodeKeysNewReq(f *testing.F)           { fuzzDecode[KeysNewReq](f) }
func FuzzDecodeKeysNewResp(f *testing.F)          { fuzzDecode[KeysNewResp](f) }
func FuzzDecodeKeysOpenReq(f *testing.F)          { fuzzDecode[KeysOpenReq](f) }
func FuzzDecodeKeySealReq(f *testing.F)           { fuzzDecode[KeySealReq](f) }
func FuzzDecodeKeyOpenReq(f *testing.F)           { fuzzDecode[KeyOpenReq](f) }
func FuzzDecodeKeysMACReq(f *testing.F)           { fuzzDecode[KeysMACReq](f) }
func FuzzDecodeBytesResp(f *testing.F)            { fuzzDecode[BytesResp](f) }
func FuzzDecodeHTTPDoReq(f *testing.F)            { fuzzDecode[HTTPDoReq](f) }
func FuzzDecodeHTTPDoResp(f *testing.F)           { fuzzDecode[HTTPDoResp](f) }
func FuzzDecodeClockNowReq(f *testing.F)          { fuzzDecode[ClockNowReq](f) }
func FuzzDecodeClockNow(f *testing.F)             { fuzzDecode[ClockNow](f) }
func FuzzDecodeLogReq(f *testing.F)               { fuzzDecode[LogReq](f) }
func FuzzDecodeFailReq(f *testing.F)              { fuzzDecode[FailReq](f) }
func FuzzDecodeErrorMessage(f *testing.F)         { fuzzDecode[ErrorMessage](f) }
func FuzzDecodePasswordHashReq(f *testing.F)      { fuzzDecode[PasswordHashReq](f) }
func FuzzDecodePasswordHash(f *testing.F)         { fuzzDecode[PasswordHash](f) }
func FuzzDecodePasswordVerifyReq(f *testing.F)    { fuzzDecode[PasswordVerifyReq](f) }
func FuzzDecodePasswordVerifyResp(f *testing.F)   { fuzzDecode[PasswordVerifyResp](f) }
func FuzzDecodeLimitAllowReq(f *testing.F)        { fuzzDecode[LimitAllowReq](f) }
func FuzzDecodeLimitDecision(f *testing.F)        { fuzzDecode[LimitDecision](f) }
func FuzzDecodeRealtimePublishReq(f *testing.F)   { fuzzDecode[RealtimePublishReq](f) }
func FuzzDecodeMailSendReq(f *testing.F)          { fuzzDecode[MailSendReq](f) }
func FuzzDecodeMailSendResp(f *testing.F)         { fuzzDecode[MailSendResp](f) }
