package apitest

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Checker sees every exchange a Client makes (Do and Raw), once the
// response has arrived, and fails t when the exchange breaks its rules.
// The e2e and native runs of the suite set one that holds each request and
// response to the API's description, docs/openapi.yaml (tests/openapi).
// A scenario needs no marking for requests it sends invalid on purpose: a
// checker judges a request by whether the server accepted it.
type Checker interface {
	Check(t testing.TB, x *Exchange)
}

// Exchange is one request as sent and the response to it.
type Exchange struct {
	// Request is the request as sent. Its body has been read: use
	// RequestBody.
	Request *http.Request
	// RequestBody is the body as sent (nil without one). For a body of
	// unknown length (sent chunked) it is what the transport read, which
	// may be less than all when the server answered early.
	RequestBody []byte
	Response    *Response
}

// capture arranges for req's body to be readable again after req is sent,
// and returns the function that reads it. Bodies that net/http can replay
// (bytes, strings) are read again through GetBody; any other reader is
// teed, so that the request still goes out exactly as built (a reader of
// unknown length stays chunked).
func (c *Client) capture(req *http.Request) func() []byte {
	if c.Check == nil || req.Body == nil || req.Body == http.NoBody {
		return func() []byte { return nil }
	}
	if req.GetBody != nil {
		return func() []byte {
			rc, err := req.GetBody()
			if err != nil {
				return nil
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			return b
		}
	}
	var buf bytes.Buffer
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(req.Body, &buf), req.Body}
	return func() []byte { return buf.Bytes() }
}

// check hands the finished exchange to the client's Checker, if it has one.
func (c *Client) check(t testing.TB, req *http.Request, body func() []byte, r *Response) {
	t.Helper()
	if c.Check != nil {
		c.Check.Check(t, &Exchange{Request: req, RequestBody: body(), Response: r})
	}
}
