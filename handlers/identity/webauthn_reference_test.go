//go:build !nopasskeys

package identity

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"pommy.ai/edge/tests/webauthntest"
)

// Our verifier against the reference relying party, github.com/go-webauthn/webauthn
// (a test dependency only): whatever assertion we accept, it must accept
// too. (We may refuse more: a backup-eligibility change, an attested
// credential in an assertion.)

type assertionParts struct {
	session *webauthnSession
	rec     storedCredential
	key     []byte // the COSE key
	id      string
	handle  string
}

func referenceFixture(tb testing.TB) (*assertionParts, []byte, []byte, []byte) {
	a := webauthntest.New(testOrigin)
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}, UV: true}
	resp, _, err := a.Create(creationOptions(testRP(), s.Challenge, "u_person", "p@example.com", "P", nil))
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := verifyRegistration(resp, s)
	if err != nil {
		tb.Fatal(err)
	}
	get, err := a.Get(requestOptions(testRP(), s.Challenge, nil, "required"))
	if err != nil {
		tb.Fatal(err)
	}
	var m struct {
		ID       string
		Response struct{ ClientDataJSON, AuthenticatorData, Signature, UserHandle string }
	}
	json.Unmarshal(get, &m)
	dec := base64.RawURLEncoding.DecodeString
	cd, _ := dec(m.Response.ClientDataJSON)
	ad, _ := dec(m.Response.AuthenticatorData)
	sig, _ := dec(m.Response.Signature)
	key, _ := dec(reg.record.PublicKey)
	return &assertionParts{session: s, rec: reg.record, key: key, id: m.ID, handle: m.Response.UserHandle}, cd, ad, sig
}

// both verifies one assertion made of cd, ad and sig with our verifier and
// with the reference; nil means accepted.
func (p *assertionParts) both(cd, ad, sig []byte) (ours, theirs error, ok bool) {
	enc := base64.RawURLEncoding.EncodeToString
	js, _ := json.Marshal(map[string]any{"id": p.id, "rawId": p.id, "type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": enc(cd), "authenticatorData": enc(ad), "signature": enc(sig), "userHandle": p.handle}})
	c, id, err := parseAssertion(js)
	if err != nil {
		return nil, nil, false
	}
	_, ours = verifyAssertion(c, id, p.session, p.rec)
	parsed, theirs := protocol.ParseCredentialRequestResponseBytes(js)
	if theirs == nil {
		theirs = parsed.Verify(p.session.Challenge, p.session.RPID, "", p.session.Origins, nil, nil, protocol.TopOriginExplicitVerificationMode,
			false, p.session.UV, true, p.key, protocol.SignaturePolicy{ECDSAEncoding: protocol.ECDSASignatureEncodingDER})
	}
	return ours, theirs, true
}

func TestAssertionAgreesWithReference(t *testing.T) {
	p, cd, ad, sig := referenceFixture(t)
	ours, theirs, _ := p.both(cd, ad, sig)
	if ours != nil || theirs != nil {
		t.Fatalf("a good assertion: ours %v, the reference's %v", ours, theirs)
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte{}, b...)
		c[i] ^= 1
		return c
	}
	for name, c := range map[string][3][]byte{
		"the RP ID hash":   {cd, flip(ad, 0), sig},
		"the flags (UP)":   {cd, flip(ad, 32), sig},
		"the counter":      {cd, flip(ad, 36), sig},
		"the signature":    {cd, ad, flip(sig, len(sig)-1)},
		"the client data":  {flip(cd, len(cd)-2), ad, sig},
		"a truncated data": {cd, ad[:36], sig},
	} {
		ours, theirs, ok := p.both(c[0], c[1], c[2])
		if ok && (ours == nil || theirs == nil) {
			t.Errorf("%s changed: ours %v, the reference's %v (both must refuse)", name, ours, theirs)
		}
	}
}

func FuzzAssertionAgainstReference(f *testing.F) {
	p, cd, ad, sig := referenceFixture(f)
	f.Add(cd, ad, sig)
	f.Fuzz(func(t *testing.T, cd, ad, sig []byte) {
		ours, theirs, ok := p.both(cd, ad, sig)
		if ok && ours == nil && theirs != nil {
			t.Fatalf("we accept an assertion the reference refuses: %v", theirs)
		}
	})
}

// FuzzRegistrationAgainstReference: a registration we accept (its client
// data and attestation object changed anyhow) the reference accepts too.
func FuzzRegistrationAgainstReference(f *testing.F) {
	a := webauthntest.New(testOrigin)
	s := &webauthnSession{Challenge: newWebAuthnChallenge(), RPID: "pommy.example", Origins: []string{testOrigin}, User: "u_person"}
	resp, _, err := a.Create(creationOptions(testRP(), s.Challenge, s.User, "p@example.com", "P", nil))
	if err != nil {
		f.Fatal(err)
	}
	var m struct {
		ID       string
		Response struct{ ClientDataJSON, AttestationObject string }
	}
	json.Unmarshal(resp, &m)
	dec := base64.RawURLEncoding.DecodeString
	cd, _ := dec(m.Response.ClientDataJSON)
	att, _ := dec(m.Response.AttestationObject)
	f.Add(cd, att)
	params := []protocol.CredentialParameter{{Type: "public-key", Algorithm: -7}, {Type: "public-key", Algorithm: -8}, {Type: "public-key", Algorithm: -257}}
	f.Fuzz(func(t *testing.T, cd, att []byte) {
		enc := base64.RawURLEncoding.EncodeToString
		// The id is the attested one, when there is one to read.
		id := m.ID
		if v, _, err := cborDecode(att); err == nil {
			if ad, ok := v.textKey("authData"); ok {
				if d, err := parseAuthData(ad.b); err == nil && d.credID != nil {
					id = enc(d.credID)
				}
			}
		}
		js, _ := json.Marshal(map[string]any{"id": id, "rawId": id, "type": "public-key", "clientExtensionResults": map[string]any{},
			"response": map[string]any{"clientDataJSON": enc(cd), "attestationObject": enc(att)}})
		if _, ours := verifyRegistration(js, s); ours != nil {
			return
		}
		parsed, theirs := protocol.ParseCredentialCreationResponseBytes(js)
		if theirs == nil {
			_, theirs = parsed.Verify(s.Challenge, s.RPID, s.Origins, nil, nil, protocol.TopOriginExplicitVerificationMode, false, false, true, nil, params,
				protocol.AttestationPolicy{}, protocol.SignaturePolicy{ECDSAEncoding: protocol.ECDSASignatureEncodingDER})
		}
		if theirs != nil {
			t.Fatalf("we accept a registration the reference refuses: %v", theirs)
		}
	})
}
