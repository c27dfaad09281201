package widget

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"pommy.ai/edge/handlers/strictjson"
)

// Token lifetimes.
const (
	WidgetTokenTTL   = 15 * time.Minute
	AnonymousVisitor = 180 * 24 * time.Hour
	maxWidgetToken   = 512
	// maxVisitorToken must hold the largest token identify mints: a name of
	// 200 characters and an email of 254 bytes that JSON writes as six
	// bytes each (U+2028) make a payload under 2,900 bytes, under 3,900 in
	// base64url with its MAC. A smaller cap would let a user's display name
	// buy a token that every later request refuses
	// (tests/e2e TestWidgetLongClaims, TestVisitorTokenHoldsLongestClaims).
	maxVisitorToken   = 4096
	macPurposeWidget  = "widget-token"
	macPurposeVisitor = "visitor-token"
	macPurposeSubject = "widget-subject"
)

// widgetClaims is a widget token's payload: the tenant, the embedding
// origin it was minted for, its expiry (Unix seconds) and a nonce.
type widgetClaims struct {
	T string `json:"t"`
	O string `json:"o"`
	E int64  `json:"e"`
	N string `json:"n"`
}

// visitorClaims is a visitor token's payload: the tenant, the visitor's
// contact id, whether the tenant verified them, the identity JWT's name and
// email (verified only), and its expiry (Unix seconds).
type visitorClaims struct {
	T string `json:"t"`
	C string `json:"c"`
	V bool   `json:"v"`
	N string `json:"n,omitempty"`
	M string `json:"m,omitempty"`
	E int64  `json:"e"`
}

// macFunc is HMAC-SHA256 of msg under the home's key for one purpose
// (storage.Keys.MAC); the parsers take it as a function so that they can
// be fuzzed without a platform.
type macFunc func(msg []byte) ([]byte, error)

func (svc *Service) mac(ctx context.Context, purpose string) macFunc {
	return func(msg []byte) ([]byte, error) { return svc.p.Keys.MAC(ctx, purpose, msg) }
}

var b64 = base64.RawURLEncoding.Strict()

// errToken is every refusal of a token: the reason is for tests and logs,
// never for the client (which learns only that the token is invalid).
var errToken = errors.New("widget: invalid token")

// encodeToken is prefix + base64url(payload) + "." + base64url(MAC(payload)).
func encodeToken(prefix string, payload []byte, mac macFunc) (string, error) {
	sum, err := mac(payload)
	if err != nil {
		return "", err
	}
	return prefix + b64.EncodeToString(payload) + "." + b64.EncodeToString(sum), nil
}

// decodeToken checks a token's shape and MAC before anything reads its
// payload: size first (before any decoding), then the strict base64url of
// both parts, then the MAC (constant-time), and only then the strict JSON
// decoding of the payload into claims (unknown or duplicate keys refused).
// A MAC fault of the key custodian is returned as is (a 5xx, not a
// refusal).
func decodeToken(tok, prefix string, max int, mac macFunc, claims any) error {
	if len(tok) > max || !strings.HasPrefix(tok, prefix) {
		return errToken
	}
	body, sig, ok := strings.Cut(tok[len(prefix):], ".")
	if !ok || body == "" || len(sig) != 43 || strings.Contains(sig, ".") {
		return errToken
	}
	payload, err := b64.DecodeString(body)
	if err != nil {
		return errToken
	}
	got, err := b64.DecodeString(sig)
	if err != nil || len(got) != 32 {
		return errToken
	}
	want, err := mac(payload)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, want) {
		return errToken
	}
	if err := strictjson.Decode(payload, claims); err != nil {
		return errToken
	}
	return nil
}

func (svc *Service) mintWidget(ctx context.Context, tenant, origin string, now time.Time) (string, time.Time, error) {
	exp := now.Add(WidgetTokenTTL).Truncate(time.Second)
	var n [8]byte
	randRead(n[:])
	payload, err := marshal(widgetClaims{T: tenant, O: origin, E: exp.Unix(), N: hex.EncodeToString(n[:])})
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := encodeToken("wt_", payload, svc.mac(ctx, macPurposeWidget))
	return tok, exp, err
}

// parseWidget returns a widget token's claims if its MAC verifies, it is
// complete and not expired at now.
func parseWidget(tok string, mac macFunc, now time.Time) (*widgetClaims, error) {
	var c widgetClaims
	if err := decodeToken(tok, "wt_", maxWidgetToken, mac, &c); err != nil {
		return nil, err
	}
	if c.T == "" || c.O == "" || c.E <= now.Unix() {
		return nil, errToken
	}
	return &c, nil
}

func (svc *Service) mintVisitor(ctx context.Context, c visitorClaims) (string, error) {
	payload, err := marshal(c)
	if err != nil {
		return "", err
	}
	return encodeToken("vt_", payload, svc.mac(ctx, macPurposeVisitor))
}

// parseVisitor returns a visitor token's claims if its MAC verifies, it
// names a tenant and a contact, carries no claims of a verified visitor
// when anonymous, and is not expired at now.
func parseVisitor(tok string, mac macFunc, now time.Time) (*visitorClaims, error) {
	var c visitorClaims
	if err := decodeToken(tok, "vt_", maxVisitorToken, mac, &c); err != nil {
		return nil, err
	}
	if c.T == "" || !strings.HasPrefix(c.C, "ct_") || c.E <= now.Unix() || (!c.V && (c.N != "" || c.M != "")) {
		return nil, errToken
	}
	return &c, nil
}

// marshal is JSON without HTML escaping (the payload is never HTML).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := jsonEncoder(&b)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// subjectContact is a verified visitor's contact id ("ct_" + base32 of
// the first 128 bits of the MAC), derived from the
// tenant's user id (the JWT's sub) with the home's keyed MAC: the same
// user always maps to the same contact, without a lookup table and without
// sub stored or sent in clear.
func (svc *Service) subjectContact(ctx context.Context, tenant, sub string) (string, error) {
	sum, err := svc.p.Keys.MAC(ctx, macPurposeSubject, []byte(tenant+"\x00"+sub))
	if err != nil {
		return "", err
	}
	// The shape of every id (web.NewID: 128 bits in 26 base32
	// characters), which the capabilities check ids against.
	return "ct_" + idEncoding.EncodeToString(sum[:16]), nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
