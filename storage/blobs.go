package storage

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Blobs is an object store: R2 at the edge, files or S3 in the host.
// Bodies stream in both directions. A Put is all-or-nothing: a failed or
// cancelled Put leaves the previous object (or no object) in place.
type Blobs interface {
	// Put stores the reader's bytes under key. size is the exact length or -1
	// when unknown; adapters that need a length spool the body first.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts BlobPutOptions) (BlobInfo, error)
	// Get returns ErrNotFound for a missing key. The caller closes the body.
	Get(ctx context.Context, key string) (io.ReadCloser, BlobInfo, error)
	Head(ctx context.Context, key string) (BlobInfo, error)
	// Delete of a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns objects with the prefix in lexical key order, at most
	// limit (adapter maximum when <= 0), and a cursor for the next page.
	List(ctx context.Context, prefix, cursor string, limit int) (BlobList, error)
}

// BlobPutOptions tune a Put.
type BlobPutOptions struct {
	ContentType string
}

// BlobInfo describes a stored object.
type BlobInfo struct {
	Key         string
	Size        int64
	ContentType string
	ETag        string
	Modified    time.Time
}

// BlobList is one page of objects.
type BlobList struct {
	Objects []BlobInfo
	Cursor  string
}

// MaxBlobKey is the longest key every backend accepts (R2: 1024 bytes).
const MaxBlobKey = 1024

// CheckBlobKey applies the key rules every Blobs adapter shares, so that a
// key that works in one home works in all: 1 to MaxBlobKey bytes of UTF-8
// without control characters, and no "/"-separated segment empty, "." or
// ".." (which also rules out a leading or trailing "/"). The errors wrap
// ErrInvalid.
func CheckBlobKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("storage: blob key %q: %s: %w", key, why, ErrInvalid)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxBlobKey:
		return bad(fmt.Sprintf("%d bytes exceeds %d", len(key), MaxBlobKey))
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return bad("control character")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`empty, "." or ".." path segment`)
		}
	}
	return nil
}
