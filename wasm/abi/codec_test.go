package abi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
)

// examples returns filled-in values of every message type, used as
// round-trip cases and as fuzz seeds.
func examples() []Message {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC)
	hdr := http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}}
	info := BlobInfo{Key: "t/1/a.png", Size: 42, ContentType: "image/png", ETag: `"abc"`, Modified: t0}
	return []Message{
		&Empty{},
		&RequestHeadReq{},
		&RequestHead{Method: "POST", RequestURI: "/v1/chat?x=1", Host: "example.com", Proto: "HTTP/1.1",
			Header: hdr, RemoteAddr: "127.0.0.1:5000", TLS: true, RequestID: "r-1",
			Deadline: t0.UnixNano(), ContentLength: -1, Body: 3, MaxBody: 1 << 20},
		&ResponseHead{Status: 201, Header: hdr, Body: []byte(`{"ok":true}`), Flush: true},
		&ResponseWrite{Data: []byte("chunk"), Flush: false},
		&ReadReq{Handle: 7, Max: 65536},
		&ReadResp{Data: []byte("hello"), EOF: true},
		&CloseReq{Handle: 7},
		&SQLExecReq{Query: "INSERT INTO t VALUES (?, ?, ?, ?, ?)", Args: []any{nil, int64(-5), 2.5, "s", []byte{0, 1}}},
		&SQLResult{RowsAffected: 1, LastInsertID: math.MaxInt64},
		&SQLQueryReq{Query: "SELECT a, b FROM t WHERE c = ?", Args: []any{int64(math.MinInt64)}},
		&SQLRows{Columns: []string{"a", "b"}, Rows: [][]any{{int64(1), "x"}, {nil, []byte{}}, {math.Inf(-1), ""}}},
		&SQLBatchReq{Stmts: []SQLStmt{{Query: "DELETE FROM t"}, {Query: "INSERT INTO t VALUES (?)", Args: []any{"v"}}}},
		&SQLBatchResp{Results: []SQLResult{{RowsAffected: 3}, {RowsAffected: 1, LastInsertID: 9}}},
		&KVGetReq{Key: "k"},
		&KVValue{Value: []byte("v")},
		&KVPutReq{Key: "k", Value: []byte("v"), TTL: time.Minute},
		&KVDeleteReq{Key: "k"},
		&KVListReq{Prefix: "p/", Cursor: "c", Limit: 100},
		&KVList{Keys: []string{"p/a", "p/b"}, Cursor: "next"},
		&BlobPutOpenReq{Key: "t/1/a.png", Size: -1, ContentType: "image/png"},
		&HandleResp{Handle: 12},
		&BlobPutWriteReq{Handle: 12, Data: bytes.Repeat([]byte{0xAB}, 300)},
		&BlobPutOpenSealedReq{Key: "t/1/n/att", Size: 1 << 20, ContentType: "application/octet-stream",
			Seal: SealedStream{Key: 2, Prefix: []byte("1234567"), AD: []byte("pommy/v1 stream")}},
		&ReadOpenSealedReq{Handle: 5, Seal: SealedStream{Key: 2, Prefix: []byte("7654321"), AD: []byte("ad")}, Unread: []byte("sealed bytes")},
		&BlobPutCommitReq{Handle: 12},
		&BlobPutAbortReq{Handle: 12},
		&info,
		&BlobGetReq{Key: "t/1/a.png"},
		&BlobGetResp{Handle: 4, Info: info},
		&BlobHeadReq{Key: "t/1/a.png"},
		&BlobDeleteReq{Key: "t/1/a.png"},
		&BlobListReq{Prefix: "t/1/", Cursor: "", Limit: 0},
		&BlobList{Objects: []BlobInfo{info, {Key: "t/1/b"}}, Cursor: "t/1/b"},
		&KeysNewReq{AD: []byte("tenant:1")},
		&KeysNewResp{Handle: 1, Wrapped: bytes.Repeat([]byte{1}, 61)},
		&KeysOpenReq{Wrapped: bytes.Repeat([]byte{1}, 61), AD: []byte("tenant:1")},
		&KeySealReq{Handle: 1, Nonce: make([]byte, 12), Plaintext: []byte("secret"), AD: []byte("ad")},
		&KeyOpenReq{Handle: 1, Nonce: make([]byte, 12), Ciphertext: make([]byte, 22), AD: []byte("ad")},
		&KeysMACReq{Purpose: "api-key", Msg: []byte("pk_live_x")},
		&BytesResp{Data: []byte{1, 2, 3}},
		&HTTPDoReq{Method: "POST", URL: "https://api.example.com/v1", Header: hdr, Body: []byte("{}"), Deadline: t0.UnixNano()},
		&HTTPDoResp{Status: 200, Header: hdr, ContentLength: 2, Body: 5},
		&ClockNowReq{},
		&ClockNow{Now: t0},
		&LogReq{Level: -4, Message: "debug line"},
		&FailReq{Message: "panic: boom"},
		&PasswordHashReq{Password: []byte("correct horse \x00 battery")},
		&PasswordHash{Encoded: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K13EBUiG7JV+9ZxztmHFTdb7J0WQsnj2V8bZaqyPptE"},
		&PasswordVerifyReq{Encoded: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K13EBUiG7JV+9ZxztmHFTdb7J0WQsnj2V8bZaqyPptE", Password: []byte("password")},
		&PasswordVerifyResp{Match: true},
		&LimitAllowReq{Name: "login", Key: "203.0.113.7"},
		&LimitDecision{Allowed: false, RetryAfter: 12 * time.Second},
		&RealtimePublishReq{Topic: "t/t_1/c/c_2"},
		&MailSendReq{ID: "ml_0123456789abcdef01234567", To: "ayşe@example.com", Subject: "Şifrenizi sıfırlayın", Text: "line 1\r\nline 2", HTML: "<p>hi</p>"},
		&MailSendResp{ProviderID: "<ml_0123456789abcdef01234567@example.com>"},
		&ErrorMessage{Message: "storage: not found"},
	}
}

func typeName(m Message) string { return reflect.TypeOf(m).Elem().Name() }

func TestRoundTrip(t *testing.T) {
	for _, m := range examples() {
		t.Run(typeName(m), func(t *testing.T) {
			b, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
			if err := Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			// Compare encodings rather than values: NaN and the
			// nil/empty distinction of absent lists make DeepEqual
			// stricter than the wire is.
			b2, err := Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
			}
			// Every proper prefix must fail cleanly, never panic.
			for i := range len(b) {
				m2 := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
				if err := Unmarshal(b[:i], m2); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded without error", i, len(b))
				}
			}
			// Trailing bytes are rejected.
			if err := Unmarshal(append(b, 0), got); err == nil {
				t.Fatal("trailing byte accepted")
			}
		})
	}
}

func TestValuesKeepTheirClass(t *testing.T) {
	in := &SQLRows{Columns: []string{"n", "i", "f", "s", "b", "e"},
		Rows: [][]any{{nil, int64(7), 7.0, "7", []byte("7"), []byte{}}}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out SQLRows
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatalf("got %#v", out)
	}
	if out.Rows[0][5] == nil {
		t.Fatal("empty blob decoded as NULL")
	}
}

func TestUnsupportedValueIsAnError(t *testing.T) {
	if _, err := Marshal(&SQLExecReq{Query: "x", Args: []any{struct{}{}}}); err == nil {
		t.Fatal("struct value encoded")
	}
	if _, err := Marshal(&SQLRows{Columns: []string{"a"}, Rows: [][]any{{1, 2}}}); err == nil {
		t.Fatal("ragged row encoded")
	}
}

func TestForgedCountsDoNotAllocate(t *testing.T) {
	// A count of 2^62 elements in a 12-byte message must fail before any
	// allocation proportional to the count.
	e := NewEncoder(nil)
	e.Uvarint(1 << 62)
	b, _ := e.Finish()
	for _, m := range []Message{&SQLBatchReq{}, &SQLBatchResp{}, &KVList{}, &BlobList{}, &SQLRows{}, &SQLExecReq{}} {
		allocs := testing.AllocsPerRun(10, func() { _ = Unmarshal(b, m) })
		if err := Unmarshal(b, m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", typeName(m), err)
		}
		if allocs > 20 {
			t.Errorf("%s: %v allocations for a forged count", typeName(m), allocs)
		}
	}
	// A length longer than the message.
	e = NewEncoder(nil)
	e.Uvarint(MaxMessage)
	b, _ = e.Finish()
	if err := Unmarshal(b, &KVValue{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestReplies(t *testing.T) {
	b, err := AppendReply(nil, &KVValue{Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	var v KVValue
	if err := DecodeReply(b, &v); err != nil || string(v.Value) != "v" {
		t.Fatalf("ok reply: %v %q", err, v.Value)
	}
	for _, tc := range []struct {
		err  error
		code Code
		is   error
	}{
		{fmt.Errorf("kv: %w", storage.ErrNotFound), CodeNotFound, storage.ErrNotFound},
		{fmt.Errorf("s3: %w", storage.ErrUnavailable), CodeUnavailable, storage.ErrUnavailable},
		{storage.ErrInvalid, CodeInvalid, storage.ErrInvalid},
		{fmt.Errorf("unique: %w", storage.ErrConflict), CodeConflict, storage.ErrConflict},
		{context.DeadlineExceeded, CodeDeadline, context.DeadlineExceeded},
		{fmt.Errorf("x: %w", context.Canceled), CodeCanceled, context.Canceled},
		{&Error{Code: CodeTooLarge, Message: "big"}, CodeTooLarge, storage.ErrInvalid},
		{errors.New("disk on fire"), CodeInternal, nil},
	} {
		code := CodeOf(tc.err)
		if code != tc.code {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, code, tc.code)
		}
		b := AppendError(nil, code, tc.err.Error())
		err := DecodeReply(b, &v)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Message != tc.err.Error() {
			t.Errorf("%v: decoded %#v", tc.err, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v: errors.Is(%v) is false across the boundary", tc.err, tc.is)
		}
	}
	if err := DecodeReply([]byte{200}, &v); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown status: %v", err)
	}
	if err := DecodeReply(nil, &v); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty reply: %v", err)
	}
	if b := AppendError(nil, CodeInternal, strings.Repeat("x", 1<<20)); len(b) > 5000 {
		t.Errorf("error reply of %d bytes", len(b))
	}
}

func TestMessageSizeCap(t *testing.T) {
	if _, err := Marshal(&KVValue{Value: make([]byte, MaxMessage)}); err == nil {
		t.Fatal("message over MaxMessage encoded")
	}
}

// TestEveryMessageIsFuzzed keeps the fuzz targets in step with Ops: each
// request and reply type needs a FuzzDecode<Type> function.
func TestEveryMessageIsFuzzed(t *testing.T) {
	src, err := os.ReadFile("fuzz_test.go")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, m := range regexp.MustCompile(`func FuzzDecode(\w+)\(`).FindAllStringSubmatch(string(src), -1) {
		have[m[1]] = true
	}
	exampled := map[string]bool{}
	for _, m := range examples() {
		exampled[typeName(m)] = true
	}
	for op, mk := range Ops() {
		if !op.Valid() || strings.HasPrefix(op.String(), "op(") {
			t.Errorf("op %d has no name", op)
		}
		for _, f := range mk {
			name := typeName(f())
			if !have[name] {
				t.Errorf("%v: no FuzzDecode%s in fuzz_test.go", op, name)
			}
			if !exampled[name] {
				t.Errorf("%v: no example of %s in examples()", op, name)
			}
		}
	}
	for op := opInvalid + 1; op < opEnd; op++ {
		if _, ok := Ops()[op]; !ok {
			t.Errorf("op %v missing from Ops()", op)
		}
	}
}
