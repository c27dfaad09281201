//go:build wasip1

// Command testguest is a deliberately small guest for the host's unit
// tests. Unlike the real guest it can misbehave on request: trap, spin past
// its deadline, sleep while ignoring its context, and pass the host
// pointers outside its memory. Each path of the request URL is one
// behaviour; see handle.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"pommy.ai/edge/wasm/abi"
)

func main() {}

//go:wasmimport pommy_v1 call
func hostCall(op uint32, in unsafe.Pointer, inLen uint32, out unsafe.Pointer, outCap uint32) int64

//go:wasmimport pommy_v1 take
func hostTake(out unsafe.Pointer, outLen uint32) int32

// hostCallRaw is call with plain integers for pointers, so that /badptr can
// pass addresses that point nowhere.
//
//go:wasmimport pommy_v1 call
func hostCallRaw(op, inPtr, inLen, outPtr, outCap uint32) int64

// config is the part of handlers.Config this guest reads.
var config struct{ Version string }

// initTime is when init ran: in an instance started from a snapshot,
// when the template ran it.
var initTime time.Time

// initKey is drawn from crypto/rand during init when the config asks for
// it, which the host must refuse to snapshot.
var initKey [16]byte

func init() {
	initTime = time.Now()
	json.Unmarshal([]byte(os.Getenv("POMMY_CONFIG")), &config)
	if config.Version == "init-rand" {
		rand.Read(initKey[:])
	}
}

//go:wasmexport pommy_v1_abi_version
func abiVersion() int32 {
	if config.Version == "wrong-abi" {
		return abi.Version + 1
	}
	return abi.Version
}

// A deliberately small reply buffer, so that the pending/take path runs
// for any reply over 1 KiB.
var buf = make([]byte, 1024)

func call(op abi.Op, req, resp abi.Message) error {
	in, err := abi.Marshal(req)
	if err != nil {
		panic(err)
	}
	n := hostCall(uint32(op), unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	runtime.KeepAlive(in)
	if n < 0 {
		panic(fmt.Sprintf("call: %d", n))
	}
	out := buf
	if n > int64(len(buf)) {
		out = make([]byte, n)
		if r := hostTake(unsafe.Pointer(&out[0]), uint32(n)); r != 0 {
			panic(fmt.Sprintf("take: %d", r))
		}
	}
	return abi.DecodeReply(out[:n], resp)
}

func respond(status int, body string) {
	call(abi.OpResponseHead, &abi.ResponseHead{Status: status, Body: []byte(body), Final: true}, &abi.Empty{})
}

type body struct{ h uint32 }

func (b body) Read(p []byte) (int, error) {
	var r abi.ReadResp
	if err := call(abi.OpRead, &abi.ReadReq{Handle: b.h, Max: uint32(len(p))}, &r); err != nil {
		return 0, err
	}
	n := copy(p, r.Data)
	if r.EOF && n == len(r.Data) {
		return n, io.EOF
	}
	return n, nil
}

//go:wasmexport pommy_v1_handle
func handle() int32 {
	var head abi.RequestHead
	if err := call(abi.OpRequestHead, &abi.RequestHeadReq{}, &head); err != nil {
		panic(err)
	}
	u, _ := url.ParseRequestURI(head.RequestURI)
	q := u.Query()
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, head.Deadline))
	defer cancel()
	switch u.Path {
	case "/rand":
		// Randomness and the clock as the guest sees them.
		var b [16]byte
		rand.Read(b[:])
		respond(200, fmt.Sprintf(`{"random":%q,"now":%d,"deadline":%d}`, hex.EncodeToString(b[:]), time.Now().UnixNano(), head.Deadline))
	case "/mathrand":
		// The runtime's generator (behind math/rand/v2), seeded at init.
		respond(200, fmt.Sprintf(`{"uint64":%d}`, mathrand.Uint64()))
	case "/clock":
		// The clocks after a restore: the monotonic and the wall clock
		// must agree on how long ago init ran, and timers and sleeps
		// must take the time they say.
		start := time.Now()
		time.Sleep(20 * time.Millisecond)
		slept := time.Since(start)
		fired := false
		select {
		case <-time.After(10 * time.Millisecond):
			fired = true
		case <-ctx.Done():
		}
		now := time.Now()
		respond(200, fmt.Sprintf(`{"now":%d,"init":%d,"sinceInit":%d,"slept":%d,"timerFired":%t}`,
			now.UnixNano(), initTime.UnixNano(), now.Sub(initTime), slept, fired))
	case "/sleep":
		ms, _ := strconv.Atoi(q.Get("ms"))
		d := time.Duration(ms) * time.Millisecond
		kv("enter")
		switch q.Get("mode") {
		case "spin": // a busy loop that never looks at its context
			for start := time.Now(); time.Since(start) < d; {
			}
		case "ignore": // a sleep that never looks at its context
			time.Sleep(d)
		default: // a handler that honours its context
			select {
			case <-time.After(d):
			case <-ctx.Done():
				kv("leave")
				respond(503, "ctx: "+ctx.Err().Error())
				return abi.ResultOK
			}
		}
		kv("leave")
		respond(200, "slept")
	case "/trap":
		if q.Get("how") == "crash" {
			call(abi.OpFail, &abi.FailReq{Message: "crashed on request"}, &abi.Empty{})
			return abi.ResultCrashed
		}
		// An unrecovered Go panic: the runtime exits the module.
		var m map[string]int
		m["x"] = 1
	case "/badptr":
		// Pointers the host must refuse without touching its own memory.
		var rc int64
		switch q.Get("which") {
		case "in":
			rc = hostCallRaw(uint32(abi.OpClockNow), 0xFFFFFFF0, 64, 0, 0)
		case "out":
			rc = hostCallRaw(uint32(abi.OpClockNow), 0, 0, 0xFFFFFF00, 4096)
		case "take":
			rc = int64(hostTake(unsafe.Pointer(&buf[0]), 10))
		case "huge":
			rc = hostCall(uint32(abi.OpClockNow), unsafe.Pointer(&buf[0]), abi.MaxMessage+1, unsafe.Pointer(&buf[0]), uint32(len(buf)))
		}
		call(abi.OpFail, &abi.FailReq{Message: fmt.Sprintf("rc=%d", rc)}, &abi.Empty{})
		respond(200, fmt.Sprintf("rc=%d", rc))
	case "/echo":
		var b [100]byte
		n, err := io.ReadFull(body{head.Body}, b[:])
		for err == nil {
			var m int
			m, err = io.ReadFull(body{head.Body}, b[:])
			n += m
		}
		respond(200, fmt.Sprintf("read %d bytes, then %v", n, err))
	case "/big":
		n, _ := strconv.Atoi(q.Get("n"))
		data := make([]byte, n)
		for i := range data {
			data[i] = byte('a' + i%26)
		}
		call(abi.OpResponseHead, &abi.ResponseHead{Status: 200}, &abi.Empty{})
		for len(data) > 0 {
			k := min(len(data), 100000)
			call(abi.OpResponseWrite, &abi.ResponseWrite{Data: data[:k]}, &abi.Empty{})
			data = data[k:]
		}
	case "/kv":
		var v abi.KVValue
		err := call(abi.OpKVGet, &abi.KVGetReq{Key: q.Get("key")}, &v)
		respond(200, fmt.Sprintf("%q %v", v.Value, err))
	case "/ops":
		// n calls of the cheapest op, to measure the cost of one call.
		n, _ := strconv.Atoi(q.Get("n"))
		for range n {
			call(abi.OpClockNow, &abi.ClockNowReq{}, &abi.ClockNow{})
		}
		respond(200, "ok")
	case "/publish":
		// A wake-up through the realtime.publish op.
		err := call(abi.OpRealtimePublish, &abi.RealtimePublishReq{Topic: q.Get("topic")}, &abi.Empty{})
		var e *abi.Error
		if errors.As(err, &e) {
			respond(200, e.Code.String())
			return abi.ResultOK
		}
		respond(200, fmt.Sprint(err))
	case "/stream":
		return stream(head, q)
	case "/noresponse":
	default:
		respond(404, "no such behaviour")
	}
	return abi.ResultOK
}

// stream is a stream route (docs/realtime.md) over a log of KV "n"
// events on topic ?topic: events cursor+1.. up to n, ?page at a time.
// ?bad= answers a malformed hand-off; ?fail_on_poll=S answers a poll S;
// ?hold_ms=N makes a poll wait N ms after reading "n" and counting itself;
// ?crash_on_poll crashes in a poll. A poll counts itself in KV "polls"
// (run it with a pool of one).
func stream(head abi.RequestHead, q url.Values) int32 {
	poll := len(head.Header["Pommy-Stream-Poll"]) > 0
	var n int64
	var v abi.KVValue
	if call(abi.OpKVGet, &abi.KVGetReq{Key: "n"}, &v) == nil {
		n, _ = strconv.ParseInt(string(v.Value), 10, 64)
	}
	if poll {
		var p abi.KVValue
		call(abi.OpKVGet, &abi.KVGetReq{Key: "polls"}, &p)
		c, _ := strconv.Atoi(string(p.Value))
		call(abi.OpKVPut, &abi.KVPutReq{Key: "polls", Value: []byte(strconv.Itoa(c + 1))}, &abi.Empty{})
		// ?hold_ms: the poll has read the log; it answers after this
		// long, so a test can wake the stream in between.
		if ms, _ := strconv.Atoi(q.Get("hold_ms")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		if q.Get("crash_on_poll") != "" {
			return abi.ResultCrashed
		}
		if s := q.Get("fail_on_poll"); s != "" {
			st, _ := strconv.Atoi(s)
			call(abi.OpResponseHead, &abi.ResponseHead{Status: st, Final: true,
				Header: map[string][]string{"Content-Type": {"application/json"}},
				Body:   []byte("{\n \"error\": {\"code\": \"revoked\", \"message\": \"session revoked\"}}\n")}, &abi.Empty{})
			return abi.ResultOK
		}
	}
	var cursor int64
	if id := head.Header["Last-Event-Id"]; len(id) > 0 {
		cursor, _ = strconv.ParseInt(id[0], 10, 64)
	} else {
		cursor, _ = strconv.ParseInt(q.Get("after"), 10, 64)
	}
	page := int64(100)
	if p, err := strconv.ParseInt(q.Get("page"), 10, 64); err == nil {
		page = p
	}
	mode := q.Get("mode")
	last := min(n, cursor+page)
	var body []byte
	for i := cursor + 1; i <= last; i++ {
		if mode == "longpoll" {
			body = fmt.Appendf(body, "%d,", i)
		} else {
			body = fmt.Appendf(body, "id: %d\nevent: test\ndata: {\"seq\":%d}\n\n", i, i)
		}
	}
	last = max(last, cursor)
	hdr := map[string][]string{
		"Pommy-Stream-Topic":  {q.Get("topic")},
		"Pommy-Stream-Cursor": {strconv.FormatInt(last, 10)},
		"Pommy-Stream-Mode":   {mode},
		"X-Saw-Poll":          {strconv.FormatBool(poll)},
	}
	if last < n {
		hdr["Pommy-Stream-More"] = []string{"1"}
	}
	if w := q.Get("wait"); w != "" {
		hdr["Pommy-Stream-Wait"] = []string{w}
	}
	if pad, _ := strconv.Atoi(q.Get("pad")); pad > 0 {
		// A comment frame of pad bytes: an answer of a chosen size.
		body = append(body, ": "...)
		body = append(body, bytes.Repeat([]byte("x"), pad)...)
		body = append(body, "\n\n"...)
	}
	switch q.Get("bad") {
	case "frames":
		body = append(body, "id: 99\ndata: {}"...)
	case "cursor":
		hdr["Pommy-Stream-Cursor"] = []string{"-1"}
	case "topic":
		hdr["Pommy-Stream-Topic"] = []string{"a topic"}
	case "mode":
		hdr["Pommy-Stream-Mode"] = []string{"websocket"}
	}
	if mode == "longpoll" {
		body = fmt.Appendf(nil, `{"events":[%s],"cursor":%d}`, strings.TrimSuffix(string(body), ","), last)
	}
	call(abi.OpResponseHead, &abi.ResponseHead{Status: 200, Header: hdr, Body: body, Final: true}, &abi.Empty{})
	return abi.ResultOK
}

// kv marks entry and exit of a request in the host's KV, which the tests
// use to see how many requests run at once.
func kv(key string) {
	call(abi.OpKVPut, &abi.KVPutReq{Key: key}, &abi.Empty{})
}

//go:wasmexport pommy_v1_scheduled
func scheduled() int32 {
	var head abi.RequestHead
	call(abi.OpRequestHead, &abi.RequestHeadReq{}, &head)
	if config.Version == "sched-fail" {
		call(abi.OpFail, &abi.FailReq{Message: "scheduled work failed on purpose"}, &abi.Empty{})
		return abi.ResultFailed
	}
	call(abi.OpKVPut, &abi.KVPutReq{Key: "scheduled", Value: []byte(strconv.FormatInt(head.Deadline, 10))}, &abi.Empty{})
	return abi.ResultOK
}
