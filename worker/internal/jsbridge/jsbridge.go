//go:build js && wasm

// Package jsbridge is the worker's only glue to JavaScript values that is
// shared between adapters: awaiting promises, catching thrown exceptions,
// moving bytes, and turning ReadableStreams into io.Readers and Go readers
// into streams. Every adapter package (d1, kv, r2, egress) builds on it so
// that syscall/js details stay in one place.
package jsbridge

import (
	"context"
	"fmt"
	"strings"
	"syscall/js"
)

var (
	global          = js.Global()
	objectClass     = global.Get("Object")
	arrayClass      = global.Get("Array")
	uint8ArrayClass = global.Get("Uint8Array")
	arrayBufferCls  = global.Get("ArrayBuffer")
)

// Error is an exception or promise rejection raised by JavaScript.
type Error struct {
	Name    string // "Error", "TypeError", ...
	Message string // the message, with any cause appended
}

func (e *Error) Error() string {
	if e.Name == "" || e.Name == "Error" {
		return e.Message
	}
	return e.Name + ": " + e.Message
}

// ErrorFrom converts a thrown or rejected JavaScript value into a Go error.
func ErrorFrom(v js.Value) error {
	e := &Error{}
	switch v.Type() {
	case js.TypeObject:
		if n := v.Get("name"); n.Type() == js.TypeString {
			e.Name = n.String()
		}
		if m := v.Get("message"); m.Type() == js.TypeString {
			e.Message = m.String()
		} else {
			e.Message = safeString(v)
		}
		if c := v.Get("cause"); c.Truthy() {
			cm := c.Get("message")
			if cm.Type() == js.TypeString {
				if s := cm.String(); s != "" && !strings.Contains(e.Message, s) {
					e.Message += ": " + s
				}
			} else if c.Type() == js.TypeString {
				e.Message += ": " + c.String()
			}
		}
	case js.TypeUndefined, js.TypeNull:
		e.Message = "JavaScript rejected with " + v.Type().String()
	default:
		e.Message = safeString(v)
	}
	return e
}

func safeString(v js.Value) (s string) {
	defer func() {
		if recover() != nil {
			s = "<unprintable JavaScript value>"
		}
	}()
	return global.Call("String", v).String()
}

// Try runs f, converting a JavaScript exception thrown by a call inside it
// (which syscall/js raises as a panic of js.Error) into an error.
func Try(f func() js.Value) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = ErrorFrom(je.Value)
				return
			}
			panic(r)
		}
	}()
	return f(), nil
}

// Call invokes obj[method](args...) and converts a thrown exception into an error.
func Call(obj js.Value, method string, args ...any) (js.Value, error) {
	return Try(func() js.Value { return obj.Call(method, args...) })
}

// Await waits for a promise (or any value: a non-thenable is returned as is).
// When ctx ends first it returns ctx.Err(); the JavaScript operation itself
// goes on, since most binding calls cannot be cancelled.
func Await(ctx context.Context, p js.Value) (js.Value, error) {
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return p, nil
	}
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1) // buffered: the callbacks must never block
	var onOK, onErr js.Func
	onOK = js.FuncOf(func(_ js.Value, args []js.Value) any {
		onOK.Release()
		onErr.Release()
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- outcome{v: v}
		return nil
	})
	onErr = js.FuncOf(func(_ js.Value, args []js.Value) any {
		onOK.Release()
		onErr.Release()
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- outcome{err: ErrorFrom(v)}
		return nil
	})
	if _, err := Call(p, "then", onOK, onErr); err != nil {
		onOK.Release()
		onErr.Release()
		return js.Value{}, err
	}
	select {
	case o := <-ch:
		return o.v, o.err
	case <-ctx.Done():
		return js.Value{}, ctx.Err()
	}
}

// CallAwait calls obj[method](args...) and awaits the promise it returns.
func CallAwait(ctx context.Context, obj js.Value, method string, args ...any) (js.Value, error) {
	if err := ctx.Err(); err != nil {
		return js.Value{}, err
	}
	p, err := Call(obj, method, args...)
	if err != nil {
		return js.Value{}, err
	}
	return Await(ctx, p)
}

// NewObject returns a new empty JavaScript object.
func NewObject() js.Value { return objectClass.New() }

// ListOptions is the options object Workers KV's and R2's list methods
// share: limit, and prefix and cursor when set.
func ListOptions(prefix, cursor string, limit int) js.Value {
	opts := NewObject()
	opts.Set("limit", limit)
	if prefix != "" {
		opts.Set("prefix", prefix)
	}
	if cursor != "" {
		opts.Set("cursor", cursor)
	}
	return opts
}

// NewArray returns a new JavaScript array of the values.
func NewArray(vals ...any) js.Value { return arrayClass.Call("of", vals...) }

// Uint8Array copies b into a new Uint8Array.
func Uint8Array(b []byte) js.Value {
	a := uint8ArrayClass.New(len(b))
	if len(b) > 0 {
		js.CopyBytesToJS(a, b)
	}
	return a
}

// Bytes copies a binary JavaScript value into Go: an ArrayBuffer, any
// ArrayBuffer view (Uint8Array, DataView, ...), or an array of byte-valued
// numbers (the form D1 has used for blobs).
func Bytes(v js.Value) ([]byte, error) {
	switch {
	case v.Type() != js.TypeObject:
		return nil, fmt.Errorf("jsbridge: want binary data, got %s", v.Type())
	case v.InstanceOf(uint8ArrayClass):
		b := make([]byte, v.Get("byteLength").Int())
		js.CopyBytesToGo(b, v)
		return b, nil
	case v.InstanceOf(arrayBufferCls):
		u := uint8ArrayClass.New(v)
		b := make([]byte, u.Get("byteLength").Int())
		js.CopyBytesToGo(b, u)
		return b, nil
	case arrayBufferCls.Call("isView", v).Bool():
		u := uint8ArrayClass.New(v.Get("buffer"), v.Get("byteOffset"), v.Get("byteLength"))
		b := make([]byte, u.Get("byteLength").Int())
		js.CopyBytesToGo(b, u)
		return b, nil
	case arrayClass.Call("isArray", v).Bool():
		// One call through Uint8Array.from rather than one Index per byte.
		u := uint8ArrayClass.Call("from", v)
		b := make([]byte, u.Get("byteLength").Int())
		js.CopyBytesToGo(b, u)
		return b, nil
	default:
		return nil, fmt.Errorf("jsbridge: want binary data, got %s", safeString(objectClass.Get("prototype").Get("toString").Call("call", v)))
	}
}

// IsNullish reports whether v is null or undefined.
func IsNullish(v js.Value) bool { return v.IsNull() || v.IsUndefined() }

// Binding returns the worker environment's binding (or var, or secret) name;
// it is undefined when the binding is not configured.
func Binding(name string) js.Value {
	ctx := global.Get("context")
	if IsNullish(ctx) {
		return js.Undefined()
	}
	env := ctx.Get("env")
	if IsNullish(env) {
		return js.Undefined()
	}
	return env.Get(name)
}

// Var returns the string environment variable or secret name, or "".
func Var(name string) string {
	v := Binding(name)
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}
