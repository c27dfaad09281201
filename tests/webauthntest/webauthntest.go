// Package webauthntest is a software WebAuthn authenticator and client for
// tests and benchmarks: it answers the options the API gives with the JSON
// a browser's PublicKeyCredential.toJSON() would send, made as a platform
// passkey makes it (ES256 keys, attestation "none", a discoverable
// credential holding the user handle, flags UP, UV, BE, BS, a sign count).
// CBOR is written with github.com/fxamacker/cbor/v2 in CTAP2's canonical
// form, not with the server's own reader, and the package's tests check its
// answers with github.com/go-webauthn/webauthn: what the server accepts
// from it, a conforming relying party accepts too.
//
// Tweak lets a test make the answers a browser would never send (another
// origin, another RP ID, a lowered counter, a bad signature) to see them
// refused.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator holds credentials, as one device (or one synced passkey
// provider) does.
type Authenticator struct {
	// Origin is the page the "browser" is on; RPID defaults to its host.
	Origin string
	// UV: the authenticator verifies the person (a PIN, a biometric).
	UV bool
	// Synced: passkeys are backup eligible and backed up (BE, BS).
	Synced bool
	// Counter: the authenticator keeps a sign count (synced passkeys
	// usually send 0).
	Counter bool
	Creds   []*Credential
}

// Credential is one key pair the authenticator holds.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	SignCount  uint32
}

// New is a platform authenticator with user verification and a counter
// for pages on origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, UV: true, Counter: true}
}

// Tweak changes one answer into one that a browser and an honest
// authenticator would not send.
type Tweak struct {
	Origin     string // clientDataJSON.origin
	Type       string // clientDataJSON.type
	Challenge  string // clientDataJSON.challenge (base64url)
	RPID       string // hashed into the authenticator data
	NoUP, NoUV bool
	// SignCount, when set, is the counter sent (not the next one).
	SignCount *uint32
	// BadSignature flips a bit of the signature.
	BadSignature bool
	// UserHandle replaces the user handle sent.
	UserHandle []byte
	// Fmt is an attestation format other than "none".
	Fmt string
}

var b64 = base64.RawURLEncoding

type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rp"`
	User struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	} `json:"user"`
	PubKeyCredParams []struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	} `json:"pubKeyCredParams"`
	ExcludeCredentials []struct {
		ID string `json:"id"`
	} `json:"excludeCredentials"`
	AuthenticatorSelection struct {
		ResidentKey      string `json:"residentKey"`
		UserVerification string `json:"userVerification"`
	} `json:"authenticatorSelection"`
	Attestation string `json:"attestation"`
}

type requestOptions struct {
	Challenge        string `json:"challenge"`
	RPID             string `json:"rpId"`
	AllowCredentials []struct {
		ID string `json:"id"`
	} `json:"allowCredentials"`
	UserVerification string `json:"userVerification"`
}

func (a *Authenticator) rpID(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	u, err := url.Parse(a.Origin)
	if err != nil {
		return "", err
	}
	return u.Hostname(), nil
}

// ErrExcluded is Create's answer when the authenticator already holds one
// of the excluded credentials (the browser's InvalidStateError).
var ErrExcluded = errors.New("webauthntest: the authenticator holds an excluded credential")

// ErrNoCredential is Get's answer when no credential fits the options.
var ErrNoCredential = errors.New("webauthntest: no credential for these options")

// Create answers PublicKeyCredentialCreationOptionsJSON with a
// RegistrationResponseJSON, keeping the new credential.
func (a *Authenticator) Create(options json.RawMessage, tw ...Tweak) (json.RawMessage, *Credential, error) {
	var t Tweak
	if len(tw) > 0 {
		t = tw[0]
	}
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, err
	}
	rpID, err := a.rpID(o.RP.ID)
	if err != nil {
		return nil, nil, err
	}
	es256 := false
	for _, p := range o.PubKeyCredParams {
		es256 = es256 || (p.Type == "public-key" && p.Alg == -7)
	}
	if !es256 {
		return nil, nil, fmt.Errorf("webauthntest: ES256 not offered")
	}
	for _, ex := range o.ExcludeCredentials {
		for _, c := range a.Creds {
			if b64.EncodeToString(c.ID) == ex.ID && c.RPID == rpID {
				return nil, nil, ErrExcluded
			}
		}
	}
	handle, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	c := &Credential{ID: make([]byte, 32), Key: key, RPID: rpID, UserHandle: handle}
	rand.Read(c.ID)
	if a.Counter {
		c.SignCount = 1
	}
	cd, err := a.clientData("webauthn.create", o.Challenge, t)
	if err != nil {
		return nil, nil, err
	}
	ecdh, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, nil, err
	}
	coseKey, err := encMode.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: ecdh[1:33], -3: ecdh[33:65]})
	if err != nil {
		return nil, nil, err
	}
	att := make([]byte, 0, 18+len(c.ID)+len(coseKey))
	att = append(att, make([]byte, 16)...) // AAGUID: zero, as "none" attestation sends it
	att = binary.BigEndian.AppendUint16(att, uint16(len(c.ID)))
	att = append(att, c.ID...)
	att = append(att, coseKey...)
	ad := a.authData(rpID, 0x40, c.SignCount, t)
	ad = append(ad, att...)
	format := "none"
	if t.Fmt != "" {
		format = t.Fmt
	}
	attObj, err := encMode.Marshal(map[string]any{"fmt": format, "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		return nil, nil, err
	}
	a.Creds = append(a.Creds, c)
	pub, _ := x509PKIX(key)
	resp := map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(attObj),
			"authenticatorData": b64.EncodeToString(ad), "transports": []string{"hybrid", "internal"},
			"publicKey": pub, "publicKeyAlgorithm": -7,
		},
	}
	out, err := json.Marshal(resp)
	return out, c, err
}

// Get answers PublicKeyCredentialRequestOptionsJSON with an
// AuthenticationResponseJSON made by the first credential that fits (one
// of allowCredentials, or any for the RP ID when the list is empty).
func (a *Authenticator) Get(options json.RawMessage, tw ...Tweak) (json.RawMessage, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	rpID, err := a.rpID(o.RPID)
	if err != nil {
		return nil, err
	}
	for i := len(a.Creds) - 1; i >= 0; i-- {
		c := a.Creds[i]
		if c.RPID != rpID {
			continue
		}
		ok := len(o.AllowCredentials) == 0
		for _, ac := range o.AllowCredentials {
			ok = ok || ac.ID == b64.EncodeToString(c.ID)
		}
		if ok {
			return a.GetWith(options, c, tw...)
		}
	}
	return nil, ErrNoCredential
}

// GetWith answers the options with the credential c, whatever they allow.
func (a *Authenticator) GetWith(options json.RawMessage, c *Credential, tw ...Tweak) (json.RawMessage, error) {
	var t Tweak
	if len(tw) > 0 {
		t = tw[0]
	}
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	if a.Counter {
		c.SignCount++
	}
	count := c.SignCount
	if t.SignCount != nil {
		count = *t.SignCount
	}
	rpID := c.RPID
	cd, err := a.clientData("webauthn.get", o.Challenge, t)
	if err != nil {
		return nil, err
	}
	ad := a.authData(rpID, 0, count, t)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		return nil, err
	}
	if t.BadSignature {
		sig[len(sig)-1] ^= 1
	}
	handle := c.UserHandle
	if t.UserHandle != nil {
		handle = t.UserHandle
	}
	resp := map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(handle),
		},
	}
	return json.Marshal(resp)
}

func (a *Authenticator) clientData(typ, challenge string, t Tweak) ([]byte, error) {
	if t.Type != "" {
		typ = t.Type
	}
	if t.Challenge != "" {
		challenge = t.Challenge
	}
	origin := a.Origin
	if t.Origin != "" {
		origin = t.Origin
	}
	// The member order of Chrome's serialization.
	return []byte(fmt.Sprintf(`{"type":%q,"challenge":%q,"origin":%q,"crossOrigin":false}`, typ, challenge, origin)), nil
}

func (a *Authenticator) authData(rpID string, flags byte, count uint32, t Tweak) []byte {
	if t.RPID != "" {
		rpID = t.RPID
	}
	h := sha256.Sum256([]byte(rpID))
	flags |= 0x01 // UP
	if t.NoUP {
		flags &^= 0x01
	}
	if a.UV && !t.NoUV {
		flags |= 0x04
	}
	if a.Synced {
		flags |= 0x08 | 0x10
	}
	ad := append([]byte{}, h[:]...)
	ad = append(ad, flags)
	return binary.BigEndian.AppendUint32(ad, count)
}

var encMode = func() cbor.EncMode {
	m, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// x509PKIX is the public key as toJSON's getPublicKey() gives it
// (base64url of its SubjectPublicKeyInfo).
func x509PKIX(key *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return b64.EncodeToString(der), err
}
