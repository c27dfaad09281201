package webauthntest

import (
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// The software authenticator's answers are what a conforming relying party
// (github.com/go-webauthn/webauthn, which the server does not use) accepts:
// a registration, a passwordless sign-in, and then a counter that did not
// move up, which it flags as a clone.

type user struct {
	id    []byte
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return "person@example.com" }
func (u *user) WebAuthnDisplayName() string                { return "A Person" }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func TestReferenceRelyingPartyAccepts(t *testing.T) {
	rp, err := webauthn.New(&webauthn.Config{RPID: "localhost", RPDisplayName: "Pommy Edge", RPOrigins: []string{"http://localhost:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	u := &user{id: []byte("u_0123456789abcdefghjkmnpqrs")}
	creation, session, err := rp.BeginRegistration(u,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := json.Marshal(creation.Response)
	a := New("http://localhost:8080")
	reg, _, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(reg)
	if err != nil {
		t.Fatalf("the reference cannot parse the registration: %v", err)
	}
	cred, err := rp.CreateCredential(u, *session, parsed)
	if err != nil {
		t.Fatalf("the reference refuses the registration: %v", err)
	}
	u.creds = []webauthn.Credential{*cred}

	assertion, session, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		t.Fatal(err)
	}
	opts, _ = json.Marshal(assertion.Response)
	got, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := protocol.ParseCredentialRequestResponseBytes(got)
	if err != nil {
		t.Fatalf("the reference cannot parse the assertion: %v", err)
	}
	_, used, err := rp.ValidatePasskeyLogin(func(raw, handle []byte) (webauthn.User, error) { return u, nil }, *session, pa)
	if err != nil {
		t.Fatalf("the reference refuses the assertion: %v", err)
	}
	if used.Authenticator.CloneWarning || used.Authenticator.SignCount != 2 {
		t.Fatalf("sign count %d, clone warning %v", used.Authenticator.SignCount, used.Authenticator.CloneWarning)
	}
	u.creds = []webauthn.Credential{*used}

	// The same counter again: the reference flags a clone.
	assertion, session, _ = rp.BeginDiscoverableLogin()
	opts, _ = json.Marshal(assertion.Response)
	two := uint32(2)
	got, err = a.Get(opts, Tweak{SignCount: &two})
	if err != nil {
		t.Fatal(err)
	}
	pa, _ = protocol.ParseCredentialRequestResponseBytes(got)
	_, used, err = rp.ValidatePasskeyLogin(func(raw, handle []byte) (webauthn.User, error) { return u, nil }, *session, pa)
	if err != nil || !used.Authenticator.CloneWarning {
		t.Fatalf("a repeated counter: err %v, clone warning %v", err, used != nil && used.Authenticator.CloneWarning)
	}

	// Another origin: refused by the reference too.
	assertion, session, _ = rp.BeginDiscoverableLogin()
	opts, _ = json.Marshal(assertion.Response)
	got, _ = a.Get(opts, Tweak{Origin: "http://evil.example"})
	pa, _ = protocol.ParseCredentialRequestResponseBytes(got)
	if _, _, err := rp.ValidatePasskeyLogin(func(raw, handle []byte) (webauthn.User, error) { return u, nil }, *session, pa); err == nil {
		t.Fatal("the reference accepted another origin")
	}
}
