//go:build js && wasm

// Package r2 is the edge adapter of storage.Blobs on an R2 bucket binding.
//
// Bodies stream both ways. A Put of known size feeds R2 through a
// FixedLengthStream (R2 needs the length up front) without holding the body
// in memory; a body longer or shorter than its size aborts the stream, so R2
// stores nothing and the previous object stays. A Put of unknown size (-1)
// has no length to give R2 and no disk to spool to, so it is read into
// memory first, up to MaxBuffered bytes (more is ErrInvalid; callers with
// large bodies of unknown length must learn the length first). Bodies of at
// most one chunk are sent as one buffer as well, which costs nothing.
// Get returns the object's ReadableStream as an io.ReadCloser.
package r2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

const (
	// MaxList is the most objects R2 returns from one list call.
	MaxList = 1000
	// MaxBuffered is the largest body of unknown size a Put accepts.
	MaxBuffered = 32 << 20
	// bufferBelow is the size up to which a known-size body is sent as one buffer.
	bufferBelow = 64 << 10
)

// Bucket is an R2 bucket.
type Bucket struct{ b js.Value }

var _ storage.Blobs = (*Bucket)(nil)

// New binds the R2 bucket in the worker's environment under binding.
func New(binding string) (*Bucket, error) {
	v := jsbridge.Binding(binding)
	if v.Type() != js.TypeObject {
		return nil, fmt.Errorf("r2: binding %q is not configured (add an [[r2_buckets]] entry to wrangler.toml)", binding)
	}
	return &Bucket{b: v}, nil
}

func wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, storage.ErrInvalid) || errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("r2: %s %q: %w", op, key, err)
	}
	return fmt.Errorf("r2: %s %q: %w: %w", op, key, storage.ErrUnavailable, err)
}

func info(obj js.Value) storage.BlobInfo {
	bi := storage.BlobInfo{
		Key:  obj.Get("key").String(),
		Size: int64(obj.Get("size").Float()),
	}
	if e := obj.Get("etag"); e.Type() == js.TypeString {
		bi.ETag = e.String()
	}
	if m := obj.Get("httpMetadata"); m.Type() == js.TypeObject {
		if ct := m.Get("contentType"); ct.Type() == js.TypeString {
			bi.ContentType = ct.String()
		}
	}
	if u := obj.Get("uploaded"); u.Type() == js.TypeObject {
		bi.Modified = time.UnixMilli(int64(u.Call("getTime").Float())).UTC()
	}
	return bi
}

func putOptions(o storage.BlobPutOptions) js.Value {
	opts := jsbridge.NewObject()
	if o.ContentType != "" {
		md := jsbridge.NewObject()
		md.Set("contentType", o.ContentType)
		opts.Set("httpMetadata", md)
	}
	return opts
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.BlobPutOptions) (storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return storage.BlobInfo{}, err
	}
	if size < -1 {
		return storage.BlobInfo{}, fmt.Errorf("r2: put %q: size %d: %w", key, size, storage.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	if size < 0 || size <= bufferBelow {
		body, err := readBody(r, size)
		if err != nil {
			return storage.BlobInfo{}, fmt.Errorf("r2: put %q: %w", key, err)
		}
		res, err := jsbridge.CallAwait(ctx, b.b, "put", key, jsbridge.Uint8Array(body), putOptions(o))
		if err != nil {
			return storage.BlobInfo{}, wrap("put", key, err)
		}
		return putResult(key, res)
	}

	pipe, err := jsbridge.NewPipe(r, size)
	if err != nil {
		return storage.BlobInfo{}, wrap("put", key, err)
	}
	p, err := jsbridge.Call(b.b, "put", key, pipe.Readable, putOptions(o))
	if err != nil {
		pipe.Abort(err)
		return storage.BlobInfo{}, wrap("put", key, err)
	}
	pipe.Start(ctx)
	res, err := jsbridge.Await(ctx, p)
	if err != nil {
		pipe.Abort(err)
		// The body's own failure (a short body, a reader error, the request
		// ending) explains the put's failure better than R2's message.
		if perr := pipe.Wait(); perr != nil && !errors.Is(perr, err) {
			if errors.Is(perr, jsbridge.ErrSizeMismatch) {
				return storage.BlobInfo{}, fmt.Errorf("r2: put %q: %w: %w", key, storage.ErrInvalid, perr)
			}
			if _, isJS := perr.(*jsbridge.Error); !isJS {
				return storage.BlobInfo{}, fmt.Errorf("r2: put %q: %w", key, perr)
			}
		}
		return storage.BlobInfo{}, wrap("put", key, err)
	}
	if perr := pipe.Wait(); perr != nil {
		// R2 accepted the object, so the body was complete; report the
		// oddity rather than hiding it.
		return storage.BlobInfo{}, wrap("put", key, perr)
	}
	return putResult(key, res)
}

func putResult(key string, res js.Value) (storage.BlobInfo, error) {
	if res.Type() != js.TypeObject {
		return storage.BlobInfo{}, wrap("put", key, errors.New("R2 returned no object"))
	}
	return info(res), nil
}

// readBody reads a body into memory: exactly size bytes when size >= 0
// (ErrInvalid when the reader has fewer or more), or up to MaxBuffered
// bytes when the size is unknown.
func readBody(r io.Reader, size int64) ([]byte, error) {
	limit := int64(MaxBuffered)
	if size >= 0 {
		limit = size
	}
	var buf bytes.Buffer
	if size >= 0 {
		buf.Grow(int(size))
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	switch {
	case n > limit && size >= 0:
		return nil, fmt.Errorf("%w: body longer than its size %d", storage.ErrInvalid, size)
	case n > limit:
		return nil, fmt.Errorf("%w: a body of unknown size is buffered in memory and may be at most %d bytes", storage.ErrInvalid, MaxBuffered)
	case size >= 0 && n != size:
		return nil, fmt.Errorf("%w: body has %d bytes, size says %d", storage.ErrInvalid, n, size)
	}
	return buf.Bytes(), nil
}

func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	obj, err := jsbridge.CallAwait(ctx, b.b, "get", key)
	if err != nil {
		return nil, storage.BlobInfo{}, wrap("get", key, err)
	}
	if jsbridge.IsNullish(obj) {
		return nil, storage.BlobInfo{}, fmt.Errorf("r2: get %q: %w", key, storage.ErrNotFound)
	}
	body, err := jsbridge.NewStreamReader(obj.Get("body"))
	if err != nil {
		return nil, storage.BlobInfo{}, wrap("get", key, err)
	}
	return body, info(obj), nil
}

func (b *Bucket) Head(ctx context.Context, key string) (storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return storage.BlobInfo{}, err
	}
	obj, err := jsbridge.CallAwait(ctx, b.b, "head", key)
	if err != nil {
		return storage.BlobInfo{}, wrap("head", key, err)
	}
	if jsbridge.IsNullish(obj) {
		return storage.BlobInfo{}, fmt.Errorf("r2: head %q: %w", key, storage.ErrNotFound)
	}
	return info(obj), nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if _, err := jsbridge.CallAwait(ctx, b.b, "delete", key); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix, cursor string, limit int) (storage.BlobList, error) {
	if len(prefix) > storage.MaxBlobKey {
		return storage.BlobList{}, fmt.Errorf("r2: prefix of %d bytes exceeds %d: %w", len(prefix), storage.MaxBlobKey, storage.ErrInvalid)
	}
	if limit <= 0 || limit > MaxList {
		limit = MaxList
	}
	opts := jsbridge.ListOptions(prefix, cursor, limit)
	opts.Set("include", jsbridge.NewArray("httpMetadata"))
	res, err := jsbridge.CallAwait(ctx, b.b, "list", opts)
	if err != nil {
		return storage.BlobList{}, wrap("list", prefix, err)
	}
	objs := res.Get("objects")
	out := storage.BlobList{Objects: make([]storage.BlobInfo, objs.Length())}
	for i := range out.Objects {
		out.Objects[i] = info(objs.Index(i))
	}
	if res.Get("truncated").Bool() {
		if c := res.Get("cursor"); c.Type() == js.TypeString {
			out.Cursor = c.String()
		}
	}
	return out, nil
}
