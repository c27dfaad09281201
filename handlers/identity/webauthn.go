//go:build !nopasskeys

package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"pommy.ai/edge/handlers/strictjson"
	"pommy.ai/edge/handlers/web"
)

// The WebAuthn relying party (Web Authentication Level 3), narrowed to what
// passkeys need: registration with attestation "none" (we ask for none, so
// browsers send none: we trust no authenticator vendor, we only bind a key
// to the person who proved themselves when enrolling it), and assertions
// signed with ES256, EdDSA or RS256. It is our own code rather than
// github.com/go-webauthn/webauthn, whose every attestation format (TPM,
// Android, Apple, SafetyNet, FIDO metadata with X.509 revocation) would add
// 1.36 MB gzip to the edge worker and push it past its budget
// (docs/decisions.md). The tests check these responses and this verifier
// against that library.

// webauthnTimeout is what the browser is told to give the person, and how
// long a ceremony's challenge lives (auth_challenges.expires_at).
const webauthnTimeout = 5 * time.Minute

// Limits of what a client may send: WebAuthn caps a credential id at 1023
// bytes; the rest is far above what any authenticator sends.
const (
	maxCredentialID     = 1023
	maxClientDataJSON   = 4 << 10
	maxAttestationBytes = 16 << 10
	maxCredentialJSON   = 48 << 10
)

// COSE algorithms we accept, in our order of preference.
const (
	coseES256 = -7
	coseEdDSA = -8
	coseRS256 = -257
)

// Authenticator data flags.
const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagBE = 0x08 // backup eligible (a synced passkey)
	flagBS = 0x10 // backed up
	flagAT = 0x40 // attested credential data included
	flagED = 0x80 // extension data included
)

// relyingParty is who the browser is asked to make or use a credential for:
// the RP ID is the host people reach this home at, and a response is
// accepted from that origin (and from any other public origin on the same
// host, when several are configured).
type relyingParty struct {
	ID      string
	Origins []string
}

func (svc *Service) relyingParty(r *http.Request) (relyingParty, error) {
	self := web.SelfOrigin(r, svc.Origins)
	u, err := url.Parse(self)
	if err != nil || u.Hostname() == "" {
		return relyingParty{}, fmt.Errorf("webauthn: no relying party for origin %q", self)
	}
	rp := relyingParty{ID: strings.ToLower(u.Hostname()), Origins: []string{self}}
	for _, o := range svc.Origins {
		if ou, err := url.Parse(o); err == nil && o != self && strings.EqualFold(ou.Hostname(), rp.ID) {
			rp.Origins = append(rp.Origins, o)
		}
	}
	return rp, nil
}

// webauthnSession is what a ceremony remembers between its options and its
// response, in the data of its auth_challenges row (member "webauthn").
type webauthnSession struct {
	Challenge string   `json:"challenge"` // base64url
	RPID      string   `json:"rp_id"`
	Origins   []string `json:"origins"`
	// User is the person the ceremony is for (registration, a second
	// factor, a step-up); "" for a passwordless sign-in.
	User string `json:"user,omitempty"`
	// Allowed are the credential ids (base64url) the person may use.
	Allowed []string `json:"allowed,omitempty"`
	// UV says the authenticator must have verified the person (a PIN or a
	// biometric), as a passwordless sign-in needs.
	UV bool `json:"uv,omitempty"`
}

func newWebAuthnChallenge() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// credentialDescriptor is a PublicKeyCredentialDescriptorJSON.
type credentialDescriptor struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports,omitempty"`
}

// creationOptions are PublicKeyCredentialCreationOptionsJSON, what
// PublicKey­Credential.parseCreationOptionsFromJSON takes.
func creationOptions(rp relyingParty, challenge, userID, userName, displayName string, exclude []credentialDescriptor) json.RawMessage {
	if exclude == nil {
		exclude = []credentialDescriptor{}
	}
	b, _ := json.Marshal(map[string]any{
		"challenge": challenge,
		"rp":        map[string]string{"id": rp.ID, "name": "Pommy Edge"},
		"user": map[string]string{"id": base64.RawURLEncoding.EncodeToString([]byte(userID)),
			"name": userName, "displayName": displayName},
		"pubKeyCredParams": []map[string]any{
			{"type": "public-key", "alg": coseES256}, {"type": "public-key", "alg": coseEdDSA}, {"type": "public-key", "alg": coseRS256}},
		"timeout":            webauthnTimeout.Milliseconds(),
		"excludeCredentials": exclude,
		"authenticatorSelection": map[string]any{
			"residentKey": "required", "requireResidentKey": true, "userVerification": "preferred"},
		"attestation": "none",
		"hints":       []string{},
		"extensions":  map[string]any{},
	})
	return b
}

// requestOptions are PublicKeyCredentialRequestOptionsJSON.
func requestOptions(rp relyingParty, challenge string, allow []credentialDescriptor, uv string) json.RawMessage {
	if allow == nil {
		allow = []credentialDescriptor{}
	}
	b, _ := json.Marshal(map[string]any{
		"challenge":        challenge,
		"rpId":             rp.ID,
		"timeout":          webauthnTimeout.Milliseconds(),
		"allowCredentials": allow,
		"userVerification": uv,
		"hints":            []string{},
		"extensions":       map[string]any{},
	})
	return b
}

// publicKeyCredential is a registration or authentication response as
// PublicKeyCredential.toJSON gives it (RegistrationResponseJSON,
// AuthenticationResponseJSON).
type publicKeyCredential struct {
	ID                      string          `json:"id"`
	RawID                   string          `json:"rawId"`
	Type                    string          `json:"type"`
	AuthenticatorAttachment *string         `json:"authenticatorAttachment"`
	ClientExtensionResults  json.RawMessage `json:"clientExtensionResults"`
	Response                struct {
		ClientDataJSON     string   `json:"clientDataJSON"`
		AttestationObject  string   `json:"attestationObject"`
		AuthenticatorData  string   `json:"authenticatorData"`
		Transports         []string `json:"transports"`
		PublicKey          *string  `json:"publicKey"`
		PublicKeyAlgorithm *int64   `json:"publicKeyAlgorithm"`
		Signature          string   `json:"signature"`
		UserHandle         *string  `json:"userHandle"`
	} `json:"response"`
}

// webauthnError is the answer to a response that does not check out. It
// says which check failed: that helps a person whose browser or
// authenticator misbehaves, and tells a forger nothing that the
// specification does not (no secret is compared here but the signature).
func webauthnError(format string, args ...any) error {
	return web.Errorf(http.StatusUnauthorized, "webauthn_failed", "the passkey's answer was refused: %s", fmt.Sprintf(format, args...))
}

func b64url(field, s string, max int) ([]byte, error) {
	// Browsers send unpadded base64url; some libraries pad it.
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 || len(b) > max {
		return nil, webauthnError("%s is not base64url of 1 to %d bytes", field, max)
	}
	return b, nil
}

// parseCredential reads a client's PublicKeyCredential JSON.
func parseCredential(raw json.RawMessage) (*publicKeyCredential, []byte, error) {
	if len(raw) == 0 || len(raw) > maxCredentialJSON {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", "credential must be the PublicKeyCredential's JSON (toJSON()), at most %d bytes", maxCredentialJSON)
	}
	var c publicKeyCredential
	if err := strictjson.Decode(raw, &c); err != nil {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", "credential must be the PublicKeyCredential's JSON (toJSON()): %v", err)
	}
	if c.Type != "public-key" {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", `credential.type must be "public-key"`)
	}
	id, err := b64url("credential.rawId", c.RawID, maxCredentialID)
	if err != nil {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", "credential.rawId must be base64url of 1 to %d bytes", maxCredentialID)
	}
	if c.ID != base64.RawURLEncoding.EncodeToString(id) {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", "credential.id must equal credential.rawId")
	}
	return &c, id, nil
}

type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
	TopOrigin   string `json:"topOrigin"`
}

// checkClientData verifies the collected client data (WebAuthn §7.1 steps
// 5-10, §7.2 steps 10-14) and returns its hash.
func checkClientData(b64 string, typ string, s *webauthnSession) ([]byte, error) {
	raw, err := b64url("clientDataJSON", b64, maxClientDataJSON)
	if err != nil {
		return nil, err
	}
	// The browser writes it and the authenticator signs its hash: members
	// beyond these are allowed (browsers add some on purpose).
	var cd clientData
	if err := json.Unmarshal(raw, &cd); err != nil {
		return nil, webauthnError("clientDataJSON: %v", err)
	}
	if cd.Type != typ {
		return nil, webauthnError("clientDataJSON.type is %q, want %q", cd.Type, typ)
	}
	if subtle.ConstantTimeCompare([]byte(cd.Challenge), []byte(s.Challenge)) != 1 {
		return nil, webauthnError("clientDataJSON.challenge is not this ceremony's")
	}
	ok := false
	for _, o := range s.Origins {
		ok = ok || cd.Origin == o
	}
	if !ok {
		return nil, webauthnError("clientDataJSON.origin %q is not one of %q", cd.Origin, s.Origins)
	}
	if cd.CrossOrigin || cd.TopOrigin != "" {
		return nil, webauthnError("a ceremony from inside another site's frame is refused")
	}
	h := sha256.Sum256(raw)
	return h[:], nil
}

// authData is parsed authenticator data (WebAuthn §6.1).
type authData struct {
	raw       []byte
	rpIDHash  []byte
	flags     byte
	signCount uint32
	aaguid    []byte
	credID    []byte
	publicKey []byte // the COSE key, as the authenticator encoded it
}

func parseAuthData(b []byte) (*authData, error) {
	if len(b) < 37 {
		return nil, webauthnError("authenticator data is %d bytes, under 37", len(b))
	}
	a := &authData{raw: b, rpIDHash: b[:32], flags: b[32], signCount: binary.BigEndian.Uint32(b[33:37])}
	rest := b[37:]
	if a.flags&flagAT != 0 {
		if len(rest) < 18 {
			return nil, webauthnError("attested credential data truncated")
		}
		a.aaguid = rest[:16]
		n := int(binary.BigEndian.Uint16(rest[16:18]))
		rest = rest[18:]
		if n == 0 || n > maxCredentialID || n > len(rest) {
			return nil, webauthnError("credential id length %d", n)
		}
		a.credID, rest = rest[:n], rest[n:]
		_, after, err := cborDecode(rest)
		if err != nil {
			return nil, webauthnError("credential public key: %v", err)
		}
		a.publicKey, rest = rest[:len(rest)-len(after)], after
	}
	if a.flags&flagED != 0 {
		ext, after, err := cborDecode(rest)
		if err != nil || ext.major != 5 {
			return nil, webauthnError("extensions are not a CBOR map")
		}
		rest = after
	}
	if len(rest) != 0 {
		return nil, webauthnError("%d bytes after the authenticator data", len(rest))
	}
	return a, nil
}

// check verifies what every ceremony needs of authenticator data: made for
// our RP ID, the person present (and verified when required), and backup
// flags that make sense.
func (a *authData) check(s *webauthnSession) error {
	want := sha256.Sum256([]byte(s.RPID))
	if !bytes.Equal(a.rpIDHash, want[:]) {
		return webauthnError("rpIdHash is not SHA-256 of %q", s.RPID)
	}
	if a.flags&flagUP == 0 {
		return webauthnError("the user was not present (UP flag)")
	}
	if s.UV && a.flags&flagUV == 0 {
		return webauthnError("the authenticator did not verify the user (UV flag) and this sign-in needs it")
	}
	if a.flags&flagBS != 0 && a.flags&flagBE == 0 {
		return webauthnError("backed up (BS) but not backup eligible (BE)")
	}
	return nil
}

// coseKey is a credential public key we can verify with.
type coseKey struct {
	alg int64
	pub crypto.PublicKey
}

// parseCOSEKey reads a COSE_Key (RFC 9053) of one of our algorithms.
func parseCOSEKey(b []byte) (*coseKey, error) {
	v, rest, err := cborDecode(b)
	if err != nil || len(rest) != 0 || v.major != 5 {
		return nil, webauthnError("the public key is not one CBOR map")
	}
	geti := func(k int64) (int64, bool) {
		x, ok := v.intKey(k)
		return x.n, ok && x.isInt()
	}
	getb := func(k int64) []byte {
		if x, ok := v.intKey(k); ok && x.major == 2 {
			return x.b
		}
		return nil
	}
	kty, ok1 := geti(1)
	alg, ok3 := geti(3)
	if !ok1 || !ok3 {
		return nil, webauthnError("the public key lacks kty or alg")
	}
	switch {
	case alg == coseES256 && kty == 2:
		crv, _ := geti(-1)
		x, y := getb(-2), getb(-3)
		if crv != 1 || len(x) != 32 || len(y) != 32 {
			return nil, webauthnError("ES256 key: want curve P-256 with 32-byte coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, webauthnError("ES256 key: %v", err)
		}
		return &coseKey{alg: alg, pub: pub}, nil
	case alg == coseEdDSA && kty == 1:
		crv, _ := geti(-1)
		x := getb(-2)
		if crv != 6 || len(x) != ed25519.PublicKeySize {
			return nil, webauthnError("EdDSA key: want Ed25519 with a 32-byte key")
		}
		return &coseKey{alg: alg, pub: ed25519.PublicKey(x)}, nil
	case alg == coseRS256 && kty == 3:
		n, e := getb(-1), getb(-2)
		if len(n) < 256 || len(n) > 512 || len(e) == 0 || len(e) > 4 {
			return nil, webauthnError("RS256 key: want a 2048 to 4096-bit modulus")
		}
		ei := new(big.Int).SetBytes(e)
		if !ei.IsInt64() || ei.Int64() < 3 || ei.Int64()%2 == 0 {
			return nil, webauthnError("RS256 key: bad exponent")
		}
		return &coseKey{alg: alg, pub: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ei.Int64())}}, nil
	}
	return nil, webauthnError("public key algorithm %d (kty %d) is not one of ES256, EdDSA, RS256", alg, kty)
}

// verify checks sig over authenticator data and the client data's hash.
func (k *coseKey) verify(authData, clientDataHash, sig []byte) bool {
	msg := append(append([]byte{}, authData...), clientDataHash...)
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(pub, h[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(pub, msg, sig)
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
	}
	return false
}

// storedCredential is webauthn_credentials.credential: public data only.
type storedCredential struct {
	Alg            int64    `json:"alg"`
	PublicKey      string   `json:"public_key"` // base64url of the COSE key
	AAGUID         string   `json:"aaguid"`     // hex
	Transports     []string `json:"transports,omitempty"`
	BackupEligible bool     `json:"backup_eligible"`
	UserVerified   bool     `json:"user_verified"` // at registration
	Attestation    string   `json:"attestation"`   // "none"
}

// registration is a verified new credential.
type registration struct {
	credID     []byte
	record     storedCredential
	signCount  uint32
	backedUp   bool
	transports []string
}

// verifyRegistration checks a registration response against its ceremony
// (WebAuthn §7.1).
func verifyRegistration(raw json.RawMessage, s *webauthnSession) (*registration, error) {
	c, id, err := parseCredential(raw)
	if err != nil {
		return nil, err
	}
	if _, err := checkClientData(c.Response.ClientDataJSON, "webauthn.create", s); err != nil {
		return nil, err
	}
	attRaw, err := b64url("attestationObject", c.Response.AttestationObject, maxAttestationBytes)
	if err != nil {
		return nil, err
	}
	att, rest, err := cborDecode(attRaw)
	if err != nil || len(rest) != 0 || att.major != 5 {
		return nil, webauthnError("attestationObject is not one CBOR map")
	}
	fmtV, ok1 := att.textKey("fmt")
	stmtV, ok2 := att.textKey("attStmt")
	adV, ok3 := att.textKey("authData")
	if !ok1 || !ok2 || !ok3 || fmtV.major != 3 || stmtV.major != 5 || adV.major != 2 {
		return nil, webauthnError("attestationObject lacks fmt, attStmt or authData")
	}
	// We ask for attestation "none": a browser then sends "none" with an
	// empty statement. Anything else is not what we asked for.
	if string(fmtV.b) != "none" || len(stmtV.keys) != 0 {
		return nil, webauthnError("attestation format %q: only \"none\" is accepted", fmtV.b)
	}
	ad, err := parseAuthData(adV.b)
	if err != nil {
		return nil, err
	}
	if err := ad.check(s); err != nil {
		return nil, err
	}
	if ad.flags&flagAT == 0 {
		return nil, webauthnError("no attested credential data (AT flag)")
	}
	if !bytes.Equal(ad.credID, id) {
		return nil, webauthnError("credential.rawId is not the attested credential id")
	}
	key, err := parseCOSEKey(ad.publicKey)
	if err != nil {
		return nil, err
	}
	var transports []string
	for _, t := range c.Response.Transports {
		switch t {
		case "ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb":
			transports = append(transports, t)
		}
	}
	return &registration{
		credID: id,
		record: storedCredential{Alg: key.alg, PublicKey: base64.RawURLEncoding.EncodeToString(ad.publicKey),
			AAGUID: hex.EncodeToString(ad.aaguid), Transports: transports, BackupEligible: ad.flags&flagBE != 0,
			UserVerified: ad.flags&flagUV != 0, Attestation: "none"},
		signCount: ad.signCount, backedUp: ad.flags&flagBS != 0, transports: transports,
	}, nil
}

// assertion is a verified use of a stored credential.
type assertion struct {
	credID     []byte
	userHandle []byte // nil when the authenticator sent none
	signCount  uint32
	backedUp   bool
	verified   bool // UV
}

// parseAssertion reads an authentication response far enough to know
// which credential it names (to look it up).
func parseAssertion(raw json.RawMessage) (*publicKeyCredential, []byte, error) {
	c, id, err := parseCredential(raw)
	if err != nil {
		return nil, nil, err
	}
	if c.Response.Signature == "" || c.Response.AuthenticatorData == "" || c.Response.AttestationObject != "" {
		return nil, nil, web.Errorf(http.StatusBadRequest, "invalid_credential", "credential must be an authentication response (navigator.credentials.get)")
	}
	return c, id, nil
}

// verifyAssertion checks an authentication response against its ceremony
// and the stored credential (WebAuthn §7.2), sign count excepted (the
// caller compares it with the stored one).
func verifyAssertion(c *publicKeyCredential, id []byte, s *webauthnSession, rec storedCredential) (*assertion, error) {
	if len(s.Allowed) > 0 {
		ok := false
		for _, a := range s.Allowed {
			ok = ok || a == base64.RawURLEncoding.EncodeToString(id)
		}
		if !ok {
			return nil, webauthnError("the credential is not one this ceremony allowed")
		}
	}
	hash, err := checkClientData(c.Response.ClientDataJSON, "webauthn.get", s)
	if err != nil {
		return nil, err
	}
	adRaw, err := b64url("authenticatorData", c.Response.AuthenticatorData, maxAttestationBytes)
	if err != nil {
		return nil, err
	}
	ad, err := parseAuthData(adRaw)
	if err != nil {
		return nil, err
	}
	if err := ad.check(s); err != nil {
		return nil, err
	}
	if ad.flags&flagAT != 0 {
		return nil, webauthnError("an assertion carries no attested credential data")
	}
	if rec.BackupEligible != (ad.flags&flagBE != 0) {
		return nil, webauthnError("the backup eligibility flag changed since registration")
	}
	sig, err := b64url("signature", c.Response.Signature, 1024)
	if err != nil {
		return nil, err
	}
	pk, err := b64url("public_key", rec.PublicKey, 2048)
	if err != nil {
		return nil, err
	}
	key, err := parseCOSEKey(pk)
	if err != nil {
		return nil, err
	}
	if !key.verify(adRaw, hash, sig) {
		return nil, webauthnError("the signature does not verify")
	}
	a := &assertion{credID: id, signCount: ad.signCount, backedUp: ad.flags&flagBS != 0, verified: ad.flags&flagUV != 0}
	if c.Response.UserHandle != nil && *c.Response.UserHandle != "" {
		if a.userHandle, err = b64url("userHandle", *c.Response.UserHandle, 64); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// signCountOK is WebAuthn §7.2 step 22: a counter that did not move up
// (when either side counts at all) means two copies of one authenticator.
func signCountOK(stored int64, got uint32) bool {
	return (stored == 0 && got == 0) || int64(got) > stored
}
