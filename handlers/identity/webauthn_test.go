//go:build !nopasskeys

package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/tests/webauthntest"
)

// The relying party's checks, against the software authenticator (whose
// answers the reference library go-webauthn accepts: tests/webauthntest)
// and against hostile bytes.

const testOrigin = "https://pommy.example"

func testRP() relyingParty { return relyingParty{ID: "pommy.example", Origins: []string{testOrigin}} }

func register(t *testing.T, a *webauthntest.Authenticator, tw ...webauthntest.Tweak) (*registration, *webauthnSession, error) {
	t.Helper()
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}, User: "u_person"}
	resp, _, err := a.Create(creationOptions(testRP(), s.Challenge, s.User, "p@example.com", "P", nil), tw...)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := verifyRegistration(resp, s)
	return reg, s, err
}

func assert(t *testing.T, a *webauthntest.Authenticator, reg *registration, uv bool, tw ...webauthntest.Tweak) (*assertion, error) {
	t.Helper()
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}, UV: uv}
	resp, err := a.Get(requestOptions(testRP(), s.Challenge, nil, "required"), tw...)
	if err != nil {
		t.Fatal(err)
	}
	c, id, err := parseAssertion(resp)
	if err != nil {
		return nil, err
	}
	return verifyAssertion(c, id, s, reg.record)
}

func refused(t *testing.T, what string, err error) {
	t.Helper()
	var we *web.Error
	if !errors.As(err, &we) || we.Code != "webauthn_failed" || we.Status != http.StatusUnauthorized {
		t.Errorf("%s: %v, want 401 webauthn_failed", what, err)
	}
}

func TestRegistrationAndAssertion(t *testing.T) {
	a := webauthntest.New(testOrigin)
	reg, _, err := register(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if reg.record.Alg != coseES256 || reg.signCount != 1 || len(reg.credID) != 32 || reg.record.Attestation != "none" {
		t.Fatalf("registration: %+v", reg)
	}
	got, err := assert(t, a, reg, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.signCount != 2 || !got.verified || !bytes.Equal(got.userHandle, []byte("u_person")) {
		t.Fatalf("assertion: %+v", got)
	}
	if !signCountOK(1, got.signCount) || signCountOK(2, 2) || signCountOK(5, 3) || !signCountOK(0, 0) || signCountOK(3, 0) {
		t.Error("signCountOK")
	}

	for name, tw := range map[string]webauthntest.Tweak{
		"another origin":    {Origin: "https://evil.example"},
		"a subdomain":       {Origin: "https://x.pommy.example"},
		"another RP ID":     {RPID: "evil.example"},
		"a create as a get": {Type: "webauthn.create"},
		"another challenge": {Challenge: newWebAuthnChallenge()},
		"no presence":       {NoUP: true},
		"no verification":   {NoUV: true},
		"a bad signature":   {BadSignature: true},
	} {
		_, err := assert(t, a, reg, true, tw)
		refused(t, name, err)
	}
	// User verification is only required where the session says so.
	if _, err := assert(t, a, reg, false, webauthntest.Tweak{NoUV: true}); err != nil {
		t.Errorf("a second factor without UV: %v", err)
	}
	for name, tw := range map[string]webauthntest.Tweak{
		"another origin": {Origin: "https://evil.example"},
		"another RP ID":  {RPID: "evil.example"},
		"a get":          {Type: "webauthn.get"},
		"packed":         {Fmt: "packed"},
		"no presence":    {NoUP: true},
	} {
		_, _, err := register(t, webauthntest.New(testOrigin), tw)
		refused(t, "registration with "+name, err)
	}
	// A synced passkey: BE and BS, and BE may not change afterwards.
	sa := webauthntest.New(testOrigin)
	sa.Synced = true
	sreg, _, err := register(t, sa)
	if err != nil || !sreg.record.BackupEligible || !sreg.backedUp {
		t.Fatalf("synced: %+v %v", sreg, err)
	}
	sa.Synced = false
	_, err = assert(t, sa, sreg, true)
	refused(t, "backup eligibility changed", err)
}

func TestCredentialJSONLimits(t *testing.T) {
	a := webauthntest.New(testOrigin)
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}}
	resp, _, _ := a.Create(creationOptions(testRP(), s.Challenge, "u_x", "x", "x", nil))
	var m map[string]any
	json.Unmarshal(resp, &m)
	// One byte over the size limit.
	m["clientExtensionResults"] = map[string]any{"pad": strings.Repeat("a", maxCredentialJSON)}
	big, _ := json.Marshal(m)
	if _, _, err := parseCredential(big); err == nil || err.(*web.Error).Code != "invalid_credential" {
		t.Errorf("an oversized credential: %v", err)
	}
	// A credential id over 1023 bytes.
	long := base64.RawURLEncoding.EncodeToString(make([]byte, maxCredentialID+1))
	m["clientExtensionResults"], m["id"], m["rawId"] = map[string]any{}, long, long
	b, _ := json.Marshal(m)
	if _, _, err := parseCredential(b); err == nil {
		t.Error("a 1024-byte credential id was accepted")
	}
	ok := base64.RawURLEncoding.EncodeToString(make([]byte, maxCredentialID))
	m["id"], m["rawId"] = ok, ok
	b, _ = json.Marshal(m)
	if _, _, err := parseCredential(b); err != nil {
		t.Errorf("a 1023-byte credential id: %v", err)
	}
	// id and rawId must agree; unknown members are refused.
	m["id"] = "AAAA"
	b, _ = json.Marshal(m)
	if _, _, err := parseCredential(b); err == nil {
		t.Error("id != rawId accepted")
	}
	m["id"], m["extra"] = ok, 1
	b, _ = json.Marshal(m)
	if _, _, err := parseCredential(b); err == nil {
		t.Error("an unknown member accepted")
	}
	// Client data over its limit.
	cd := base64.RawURLEncoding.EncodeToString(make([]byte, maxClientDataJSON+1))
	if _, err := checkClientData(cd, "webauthn.get", s); err == nil {
		t.Error("oversized client data accepted")
	}
}

func TestCBORLimits(t *testing.T) {
	em, _ := cbor.CTAP2EncOptions().EncMode()
	nest := func(depth int) []byte {
		var v any = 1
		for range depth {
			v = []any{v}
		}
		b, _ := em.Marshal(v)
		return b
	}
	if _, _, err := cborDecode(nest(cborMaxDepth)); err != nil {
		t.Errorf("depth %d: %v", cborMaxDepth, err)
	}
	if _, _, err := cborDecode(nest(cborMaxDepth + 1)); err == nil {
		t.Errorf("depth %d accepted", cborMaxDepth+1)
	}
	items := func(n int) []byte {
		b, _ := em.Marshal(make([]int, n))
		return b
	}
	if _, _, err := cborDecode(items(cborMaxItems - 1)); err != nil {
		t.Errorf("%d items: %v", cborMaxItems, err)
	}
	if _, _, err := cborDecode(items(cborMaxItems)); err == nil {
		t.Errorf("%d items accepted", cborMaxItems+1)
	}
	for name, b := range map[string][]byte{
		"a length past the end":  {0x5a, 0xff, 0xff, 0xff, 0xff, 0x00},
		"an array count lie":     {0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"an indefinite length":   {0x5f, 0x41, 0x00, 0xff},
		"a tag":                  {0xc0, 0x00},
		"a float":                {0xf9, 0x3c, 0x00},
		"a duplicate key":        {0xa2, 0x01, 0x00, 0x01, 0x00},
		"a byte-string key":      {0xa1, 0x41, 0x00, 0x00},
		"a huge negative":        {0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"empty":                  {},
		"a truncated argument":   {0x19, 0x01},
		"undefined (simple 23)":  {0xf7},
		"a reserved information": {0x1c},
	} {
		if _, _, err := cborDecode(b); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	v, rest, err := cborDecode([]byte{0xa2, 0x01, 0x02, 0x20, 0xf5, 0xff})
	if err != nil || !bytes.Equal(rest, []byte{0xff}) {
		t.Fatalf("%v %x", err, rest)
	}
	if x, ok := v.intKey(1); !ok || x.n != 2 {
		t.Error("key 1")
	}
	if x, ok := v.intKey(-1); !ok || x.major != 7 || x.n != 21 {
		t.Error("key -1")
	}
}

func TestCOSEKeys(t *testing.T) {
	em, _ := cbor.CTAP2EncOptions().EncMode()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pt, _ := ec.PublicKey.Bytes()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	msg, cdh := []byte("authenticator data"), make([]byte, 32)
	digest := sha256.Sum256(append(append([]byte{}, msg...), cdh...))
	ecSig, _ := ecdsa.SignASN1(rand.Reader, ec, digest[:])
	rsaSig, _ := rsa.SignPKCS1v15(rand.Reader, rk, 5 /* crypto.SHA256 */, digest[:])
	for name, c := range map[string]struct {
		key map[int]any
		sig []byte
	}{
		"ES256": {map[int]any{1: 2, 3: -7, -1: 1, -2: pt[1:33], -3: pt[33:]}, ecSig},
		"EdDSA": {map[int]any{1: 1, 3: -8, -1: 6, -2: []byte(edPub)}, ed25519.Sign(edPriv, append(append([]byte{}, msg...), cdh...))},
		"RS256": {map[int]any{1: 3, 3: -257, -1: rk.N.Bytes(), -2: []byte{1, 0, 1}}, rsaSig},
	} {
		b, _ := em.Marshal(c.key)
		k, err := parseCOSEKey(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !k.verify(msg, cdh, c.sig) {
			t.Errorf("%s: a good signature does not verify", name)
		}
		if k.verify([]byte("other data"), cdh, c.sig) {
			t.Errorf("%s: a signature over other data verifies", name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	bad := pt[33:]
	bad = append([]byte{}, bad...)
	bad[31] ^= 1
	for name, key := range map[string]map[int]any{
		"a point off the curve": {1: 2, 3: -7, -1: 1, -2: pt[1:33], -3: bad},
		"P-384":                 {1: 2, 3: -7, -1: 2, -2: pt[1:33], -3: pt[33:]},
		"ES256 with kty OKP":    {1: 1, 3: -7, -1: 1, -2: pt[1:33], -3: pt[33:]},
		"a 1024-bit RSA key":    {1: 3, 3: -257, -1: small.N.Bytes(), -2: []byte{1, 0, 1}},
		"an even exponent":      {1: 3, 3: -257, -1: rk.N.Bytes(), -2: []byte{2}},
		"ES384":                 {1: 2, 3: -35, -1: 2, -2: pt[1:33], -3: pt[33:]},
		"no alg":                {1: 2, -1: 1, -2: pt[1:33], -3: pt[33:]},
		"a short Ed25519 key":   {1: 1, 3: -8, -1: 6, -2: []byte(edPub)[:31]},
	} {
		b, _ := em.Marshal(key)
		_, err := parseCOSEKey(b)
		refused(t, name, err)
	}
}

func FuzzCBOR(f *testing.F) {
	for _, s := range [][]byte{{0xa3, 0x63, 'f', 'm', 't', 0x64, 'n', 'o', 'n', 'e', 0x01, 0x80, 0x02, 0xf6}, {0x9f}, {0xbb, 0xff, 0, 0, 0, 0, 0, 0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := cborDecode(b)
		if err == nil && len(rest) > len(b) {
			t.Fatal("rest longer than the input")
		}
		_ = v
	})
}

func FuzzAuthenticatorData(f *testing.F) {
	a := webauthntest.New(testOrigin)
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}}
	resp, _, _ := a.Create(creationOptions(testRP(), s.Challenge, "u_x", "x", "x", nil))
	var m struct {
		Response struct{ AuthenticatorData string }
	}
	json.Unmarshal(resp, &m)
	ad, _ := base64.RawURLEncoding.DecodeString(m.Response.AuthenticatorData)
	f.Add(ad)
	f.Add(ad[:37])
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseAuthData(b)
		if err != nil {
			return
		}
		d.check(s)
		if d.publicKey != nil {
			parseCOSEKey(d.publicKey)
		}
	})
}

// FuzzCredential feeds a client's credential JSON to both ceremonies.
func FuzzCredential(f *testing.F) {
	a := webauthntest.New(testOrigin)
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}}
	reg, _, _ := a.Create(creationOptions(testRP(), s.Challenge, "u_x", "x", "x", nil))
	get, _ := a.Get(requestOptions(testRP(), s.Challenge, nil, "required"))
	f.Add([]byte(reg))
	f.Add([]byte(get))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30"}}`))
	r, _ := verifyRegistration(reg, s)
	f.Fuzz(func(t *testing.T, b []byte) {
		verifyRegistration(b, s)
		if c, id, err := parseAssertion(b); err == nil && r != nil {
			verifyAssertion(c, id, s, r.record)
		}
	})
}

func TestRelyingParty(t *testing.T) {
	req := func(host string) *http.Request {
		r, _ := http.NewRequest("POST", "http://"+host+"/v1/login/passkey/options", nil)
		r.Host = host
		return r
	}
	for _, c := range []struct {
		origins []string
		host    string
		id      string
		accept  []string
	}{
		// No public origins: the request's own host.
		{nil, "localhost:8787", "localhost", []string{"http://localhost:8787"}},
		// The public origin the request came to, and the others on its host.
		{[]string{"https://support.example.com", "https://support.example.com:8443", "https://other.example"}, "support.example.com",
			"support.example.com", []string{"https://support.example.com", "https://support.example.com:8443"}},
		{[]string{"https://support.example.com", "https://other.example"}, "other.example", "other.example", []string{"https://other.example"}},
		// A host that is none of them: the first public origin, never the request's.
		{[]string{"https://support.example.com"}, "evil.example", "support.example.com", []string{"https://support.example.com"}},
	} {
		svc := &Service{Origins: c.origins}
		rp, err := svc.relyingParty(req(c.host))
		if err != nil || rp.ID != c.id || strings.Join(rp.Origins, " ") != strings.Join(c.accept, " ") {
			t.Errorf("origins %v, host %s: %+v %v, want %s %v", c.origins, c.host, rp, err, c.id, c.accept)
		}
	}
}
