package jwtsign

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"testing"
	"time"
)

// The signer must make what a tenant's backend makes: these checks are
// done by hand (HMAC over header.payload) so that a broken signer cannot
// make the e2e forgery tests pass for the wrong reason (e.g. every "good"
// token being unsigned, or a "wrong secret" token signed with the right one).
func TestSigner(t *testing.T) {
	const secret = "wis_0123456789abcdef"
	toks := MustSign(t,
		Spec{Secret: secret, Claims: map[string]any{"sub": "user-1", "name": "Ayşe"}, Exp: "10m", Iat: "now"},
		Spec{Alg: "HS512", Secret: secret, Claims: map[string]any{"sub": "user-1"}, Exp: "10m"},
		Spec{Alg: "none", Claims: map[string]any{"sub": "user-1"}, Exp: "10m"},
		Spec{Secret: secret, Claims: map[string]any{"sub": "user-1"}, Exp: "10m", Tamper: "payload"},
		Spec{Secret: secret, Claims: map[string]any{"sub": "user-1"}, Exp: "10m", Tamper: "signature"},
		Spec{Secret: secret, Claims: map[string]any{"sub": "user-1"}, Exp: "30d", Nbf: "5m"},
	)
	now := time.Now().Unix()

	h, p := parts(t, toks[0])
	if h["alg"] != "HS256" || p["sub"] != "user-1" || p["name"] != "Ayşe" {
		t.Errorf("good token: header %v payload %v", h, p)
	}
	if exp := int64(p["exp"].(float64)); exp < now+9*60 || exp > now+11*60 {
		t.Errorf("good token exp %d, now %d: want about 10 minutes ahead", exp, now)
	}
	if !verifies(toks[0], secret, sha256.New) || verifies(toks[0], "wis_other", sha256.New) {
		t.Error("the HS256 token does not verify with its secret, or verifies with another")
	}

	if h, _ := parts(t, toks[1]); h["alg"] != "HS512" || !verifies(toks[1], secret, sha512.New) {
		t.Errorf("HS512 token: header %v or its signature is wrong", h)
	}
	if h, _ := parts(t, toks[2]); h["alg"] != "none" || !strings.HasSuffix(toks[2], ".") {
		t.Errorf("unsecured token %q: want alg none and an empty signature", toks[2])
	}
	if _, p := parts(t, toks[3]); p["sub"] != "someone-else" || verifies(toks[3], secret, sha256.New) {
		t.Errorf("payload-tampered token: sub %v, or it still verifies", p["sub"])
	}
	if verifies(toks[4], secret, sha256.New) {
		t.Error("signature-tampered token still verifies")
	}
	_, p = parts(t, toks[5])
	if exp, nbf := int64(p["exp"].(float64)), int64(p["nbf"].(float64)); exp < now+29*86400 || nbf < now+4*60 {
		t.Errorf("exp %d nbf %d, now %d: want 30 days and 5 minutes ahead", exp, nbf, now)
	}
}

func parts(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	seg := strings.Split(tok, ".")
	if len(seg) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(seg))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(seg[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func verifies(tok, secret string, h func() hash.Hash) bool {
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return false
	}
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(tok[:i]))
	return hmac.Equal(m.Sum(nil), sig)
}
