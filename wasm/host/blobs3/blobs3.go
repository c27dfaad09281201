// Package blobs3 is the host's storage.Blobs on any S3-compatible object
// store (AWS S3, MinIO, Ceph, versitygw, R2's S3 API) through
// aws-sdk-go-v2.
//
// A Put spools the body first (in memory up to 8 MiB, then in a temporary
// file), checking its length and computing its MD5, and only then sends one
// PutObject with Content-Length and Content-MD5. PutObject is atomic on
// every S3-compatible store, so a body that fails midway, or has the wrong
// length, never reaches the store and the previous object stays; the store
// verifies the MD5, so a body corrupted in transit is refused. One PutObject
// takes at most 5 GiB, which bounds an object.
//
// Errors: a missing key (NoSuchKey, 404) wraps storage.ErrNotFound; a store
// that cannot be reached, answers 5xx or 429, refuses the credentials or
// lacks the bucket wraps storage.ErrUnavailable; a refused argument wraps
// storage.ErrInvalid.
package blobs3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"pommy.ai/edge/storage"
)

// MaxObject is the largest object one PutObject stores.
const MaxObject = 5 << 30

// MaxListLimit is the largest page List returns (S3's).
const MaxListLimit = 1000

const memSpool = 8 << 20

// Config says which store and bucket to use.
type Config struct {
	// Endpoint is the store's URL, e.g. http://127.0.0.1:7070; empty for AWS.
	Endpoint string
	Region   string // default us-east-1
	Bucket   string
	// AccessKey and SecretKey; when empty the SDK's default credential
	// chain (environment, shared files, instance role) is used.
	AccessKey string
	SecretKey string
	// UsePathStyle addresses the bucket in the path rather than the host
	// name; most self-hosted stores need it.
	UsePathStyle bool
	// SpoolDir holds bodies of more than 8 MiB while they are sent
	// (default os.TempDir()).
	SpoolDir string
	// MaxAttempts is how many times the SDK tries a request (default 3).
	MaxAttempts int
}

// Store is a storage.Blobs on one S3 bucket.
type Store struct {
	c        *s3.Client
	bucket   string
	spoolDir string
}

var _ storage.Blobs = (*Store)(nil)

// New returns a store for cfg. It does not contact the store; use Check for
// that.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("blobs3: no bucket: %w", storage.ErrInvalid)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = 60 * time.Second
			t.Proxy = nil
		})
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			o.MaxBackoff = 2 * time.Second
			// The client-side retry quota would, after a run of failures,
			// replace the store's error with its own; the caller's retry
			// policy decides instead.
			o.RateLimiter = ratelimit.None
		})
	}
	var creds aws.CredentialsProvider
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		ac, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("blobs3: load AWS config: %w", err)
		}
		creds = ac.Credentials
	}
	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  creds,
		UsePathStyle: cfg.UsePathStyle,
		HTTPClient:   httpClient,
		Retryer:      retryer(),
		// We send Content-MD5; the newer default checksums are not
		// understood by every S3-compatible store.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	spool := cfg.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	return &Store{c: s3.New(opts), bucket: cfg.Bucket, spoolDir: spool}, nil
}

// Check verifies that the bucket can be reached with the credentials.
func (s *Store) Check(ctx context.Context) error {
	if _, err := s.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		err = mapErr(err)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("blobs3: bucket %q: %w: %w", s.bucket, storage.ErrUnavailable, err)
		}
		return fmt.Errorf("blobs3: bucket %q: %w", s.bucket, err)
	}
	return nil
}

func etag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

// spooled is a body read in full, with its length and MD5.
type spooled struct {
	r    io.ReadSeeker
	size int64
	md5  []byte
	file *os.File
}

func (sp *spooled) Close() {
	if sp.file != nil {
		sp.file.Close()
		os.Remove(sp.file.Name())
	}
}

// spillWriter keeps up to memSpool bytes in memory, then moves to a file.
type spillWriter struct {
	dir  string
	mem  bytes.Buffer
	file *os.File
}

func (w *spillWriter) Write(p []byte) (int, error) {
	if w.file == nil && w.mem.Len()+len(p) <= memSpool {
		return w.mem.Write(p)
	}
	if w.file == nil {
		f, err := os.CreateTemp(w.dir, "pommy-s3-spool-*")
		if err != nil {
			return 0, err
		}
		w.file = f
		if _, err := f.Write(w.mem.Bytes()); err != nil {
			return 0, err
		}
		w.mem = bytes.Buffer{}
	}
	return w.file.Write(p)
}

func (s *Store) spool(ctx context.Context, r io.Reader, size int64) (*spooled, error) {
	w := &spillWriter{dir: s.spoolDir}
	h := md5.New()
	n, err := copyExact(ctx, io.MultiWriter(w, h), r, size)
	if err != nil {
		if w.file != nil {
			w.file.Close()
			os.Remove(w.file.Name())
		}
		return nil, err
	}
	sp := &spooled{size: n, md5: h.Sum(nil), file: w.file}
	if w.file != nil {
		if _, err := w.file.Seek(0, io.SeekStart); err != nil {
			sp.Close()
			return nil, err
		}
		sp.r = w.file
	} else {
		sp.r = bytes.NewReader(w.mem.Bytes())
	}
	return sp, nil
}

// copyExact copies r to w: exactly size bytes, or any number up to
// MaxObject when size is -1. It checks ctx between chunks.
func copyExact(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	limit := size
	if size < 0 {
		limit = MaxObject
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		want := int64(len(buf))
		if limit-n < want {
			want = limit - n
		}
		if want == 0 {
			var probe [1]byte
			k, err := io.ReadFull(r, probe[:])
			if k > 0 {
				if size < 0 {
					return n, fmt.Errorf("body larger than %d bytes: %w", int64(MaxObject), storage.ErrInvalid)
				}
				return n, fmt.Errorf("body longer than the declared %d bytes: %w", size, storage.ErrInvalid)
			}
			if err != nil && err != io.EOF {
				return n, fmt.Errorf("reading body: %w", err)
			}
			return n, nil
		}
		k, rerr := r.Read(buf[:want])
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("spooling body: %w: %w", storage.ErrUnavailable, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			if size >= 0 && n != size {
				return n, fmt.Errorf("body of %d bytes, declared %d: %w", n, size, storage.ErrInvalid)
			}
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("reading body: %w", rerr)
		}
	}
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.BlobPutOptions) (storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: %w", err)
	}
	if size < -1 || size > MaxObject {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: put %q: size %d: %w", key, size, storage.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	sp, err := s.spool(ctx, r, size)
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: put %q: %w", key, err)
	}
	defer sp.Close()
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          sp.r,
		ContentLength: aws.Int64(sp.size),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sp.md5)),
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	out, err := s.c.PutObject(ctx, in)
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: put %q: %w", key, mapErr(err))
	}
	tag := etag(out.ETag)
	if tag == "" {
		tag = hex.EncodeToString(sp.md5)
	}
	// PutObject does not report the stored time; this is the local clock.
	return storage.BlobInfo{Key: key, Size: sp.size, ContentType: opts.ContentType, ETag: tag, Modified: time.Now().UTC()}, nil
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, fmt.Errorf("blobs3: %w", err)
	}
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, storage.BlobInfo{}, fmt.Errorf("blobs3: get %q: %w", key, mapErr(err))
	}
	info := storage.BlobInfo{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        etag(out.ETag),
		Modified:    aws.ToTime(out.LastModified).UTC(),
	}
	return &body{rc: out.Body}, info, nil
}

// body maps errors met while streaming (the store went away mid-read).
type body struct{ rc io.ReadCloser }

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("blobs3: reading body: %w", mapErr(err))
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

func (s *Store) Head(ctx context.Context, key string) (storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: %w", err)
	}
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobs3: head %q: %w", key, mapErr(err))
	}
	return storage.BlobInfo{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ETag:        etag(out.ETag),
		Modified:    aws.ToTime(out.LastModified).UTC(),
	}, nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return fmt.Errorf("blobs3: %w", err)
	}
	_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("blobs3: delete %q: %w", key, err)
	}
	return nil
}

// List pages with S3's continuation token as the cursor.
func (s *Store) List(ctx context.Context, prefix, cursor string, limit int) (storage.BlobList, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		MaxKeys: aws.Int32(int32(limit)),
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if cursor != "" {
		in.ContinuationToken = aws.String(cursor)
	}
	out, err := s.c.ListObjectsV2(ctx, in)
	if err != nil {
		return storage.BlobList{}, fmt.Errorf("blobs3: list %q: %w", prefix, mapErr(err))
	}
	res := storage.BlobList{Objects: make([]storage.BlobInfo, 0, len(out.Contents))}
	for _, o := range out.Contents {
		res.Objects = append(res.Objects, objectInfo(o))
	}
	if aws.ToBool(out.IsTruncated) {
		res.Cursor = aws.ToString(out.NextContinuationToken)
	}
	return res, nil
}

func objectInfo(o types.Object) storage.BlobInfo {
	return storage.BlobInfo{
		Key:      aws.ToString(o.Key),
		Size:     aws.ToInt64(o.Size),
		ETag:     etag(o.ETag),
		Modified: aws.ToTime(o.LastModified).UTC(),
	}
}

// mapErr wraps an SDK error with the storage sentinel it means.
func mapErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
		case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
			"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "BadDigest":
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		case "InvalidArgument", "KeyTooLongError", "EntityTooLarge", "InvalidDigest", "InvalidRequest":
			return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
		case code >= 500, code == http.StatusTooManyRequests, code == http.StatusUnauthorized, code == http.StatusForbidden:
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		case code == http.StatusBadRequest:
			return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
		}
	}
	var send *smithyhttp.RequestSendError
	var ne net.Error
	if errors.As(err, &send) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}
