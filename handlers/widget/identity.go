package widget

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Identity JWT rules (the tenant's server signs one for its signed-in
// user; the page hands it to the widget).
const (
	maxIdentityJWT  = 4 << 10
	maxIdentityLife = 24 * time.Hour
	identityLeeway  = 60 * time.Second
	maxSubChars     = 200
	maxNameChars    = 200
	maxEmailBytes   = 254
)

// identityClaims are what a tenant may put in an identity JWT.
type identityClaims struct {
	jwt.RegisteredClaims
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// identity is a verified visitor.
type identity struct {
	Sub, Name, Email string
	Exp              time.Time
}

// verifyIdentity checks a tenant's identity JWT against its secret at now:
// HS256 only (the algorithm is pinned, so "none", HS512 or RS256 headers
// are refused whatever their signature), exp required and at most 24 h
// ahead, iat and nbf not in the future beyond 60 s, sub 1 to 200
// characters, optional string name and email. The error says which rule
// failed, never the token.
func verifyIdentity(tok string, secret []byte, now time.Time) (*identity, error) {
	if len(tok) > maxIdentityJWT {
		return nil, fmt.Errorf("the identity token is longer than %d bytes", maxIdentityJWT)
	}
	if len(secret) == 0 {
		return nil, errors.New("no identity secret")
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(identityLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c identityClaims
	parsed, err := p.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || t.Method.Alg() != "HS256" {
			return nil, errors.New("alg")
		}
		return secret, nil
	})
	// The parser reports a pinned-out algorithm as a bad signature; say
	// which rule it was.
	if err != nil && parsed != nil && parsed.Header["alg"] != "HS256" && !errors.Is(err, jwt.ErrTokenMalformed) {
		return nil, errors.New("the identity token must be signed with HS256 (alg is pinned)")
	}
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, errors.New("the identity token is not a well-formed JWT (three base64url parts; claims with string sub, name, email and numeric exp, iat, nbf)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errors.New("the identity token's signature does not verify with the tenant's identity secret")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, errors.New("the identity token must be signed with HS256 (alg is pinned)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, errors.New("the identity token has no exp claim; exp is required")
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("the identity token has expired (exp)")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, errors.New("the identity token is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, errors.New("the identity token was issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return nil, errors.New("the identity token's claims are not valid (exp, iat, nbf must be numbers; name, email, sub strings)")
	default:
		return nil, errors.New("the identity token is invalid")
	}
	if c.ExpiresAt == nil || c.ExpiresAt.Time.After(now.Add(maxIdentityLife+identityLeeway)) {
		return nil, fmt.Errorf("the identity token's exp is more than %v ahead; sign short-lived tokens", maxIdentityLife)
	}
	if n := utf8.RuneCountInString(c.Subject); c.Subject == "" || n > maxSubChars || !cleanText(c.Subject) {
		return nil, fmt.Errorf("the identity token's sub must be the user's id, 1 to %d characters without control characters", maxSubChars)
	}
	name := strings.TrimSpace(c.Name)
	if utf8.RuneCountInString(name) > maxNameChars || !cleanText(name) {
		return nil, fmt.Errorf("the identity token's name must be at most %d characters without control characters", maxNameChars)
	}
	email := strings.TrimSpace(c.Email)
	if email != "" {
		at := strings.LastIndexByte(email, '@')
		if len(email) > maxEmailBytes || at < 1 || at == len(email)-1 || !cleanText(email) || strings.ContainsAny(email, " <>,;\"") {
			return nil, fmt.Errorf("the identity token's email is not an email address of at most %d bytes", maxEmailBytes)
		}
	}
	return &identity{Sub: c.Subject, Name: name, Email: email, Exp: c.ExpiresAt.Time}, nil
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
