package identity

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TestTOTPMatch: a code is accepted for its own step and one step either
// side, never beyond, never at or before the last accepted step; the
// latest matching step is the one recorded.
func TestTOTPMatch(t *testing.T) {
	// A fixed secret and time: the five codes around now are distinct
	// (checked below), so each case is decided by its step alone.
	secret := "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	now := time.Unix(1_800_000_015, 0) // mid-step
	cur := totpStep(now)
	code := func(d time.Duration) string {
		c, err := totp.GenerateCode(secret, now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	distinct := map[string]bool{}
	for d := -2; d <= 2; d++ {
		distinct[code(time.Duration(d)*30*time.Second)] = true
	}
	if len(distinct) != 5 {
		t.Fatal("choose another fixed time: two of the five codes around it are equal")
	}
	for _, c := range []struct {
		name string
		at   time.Duration
		last int64
		want int64
	}{
		{"current", 0, 0, cur},
		{"previous step (clock behind)", -30 * time.Second, 0, cur - 1},
		{"next step (clock ahead)", 30 * time.Second, 0, cur + 1},
		{"two steps behind", -60 * time.Second, 0, 0},
		{"two steps ahead", 60 * time.Second, 0, 0},
		{"replay of the last step", 0, cur, 0},
		{"older than the last step", -30 * time.Second, cur, 0},
		{"newer than the last step", 30 * time.Second, cur, cur + 1},
	} {
		got, err := totpMatch(secret, code(c.at), now, c.last)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: step %d, want %d", c.name, got, c.want)
		}
	}
	for _, wrong := range []string{"000000", "111111", "999999"} {
		if distinct[wrong] {
			continue
		}
		if got, _ := totpMatch(secret, wrong, now, 0); got != 0 {
			t.Errorf("wrong code %s matched step %d", wrong, got)
		}
	}
}

func TestNormalizeTOTPCode(t *testing.T) {
	for in, want := range map[string]string{"123456": "123456", "123 456": "123456", " 123456 ": "123456", "000000": "000000"} {
		if got, err := normalizeTOTPCode(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "12345", "1234567", "12345a", "１２３４５６", "123-456", "12345\x00", strings.Repeat(" ", 20) + "123456"} {
		if _, err := normalizeTOTPCode(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c := newRecoveryCode()
		if len(c) != recoveryCodeLen+1 || c[5] != '-' {
			t.Fatalf("code %q", c)
		}
		n, err := normalizeRecoveryCode(c)
		if err != nil || n != c[:5]+c[6:] {
			t.Fatalf("%q normalizes to %q, %v", c, n, err)
		}
		if seen[n] {
			t.Fatalf("code %q twice in 200", c)
		}
		seen[n] = true
		// Typed in capitals, with spaces instead of the hyphen.
		if m, err := normalizeRecoveryCode(strings.ToUpper(c[:5]) + " " + c[6:]); err != nil || m != n {
			t.Errorf("%q typed differently: %q %v", c, m, err)
		}
	}
	for _, in := range []string{"", "abcde-fghi", "abcde-fghij-k", "abcde-fgh1j", "abcde-fgh0j", "abcde_fghij", "äbcde-fghij", strings.Repeat("-", 33)} {
		if _, err := normalizeRecoveryCode(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestFactorAnswerMethod(t *testing.T) {
	for _, c := range []struct {
		body     string
		password bool
		want     string
	}{
		{`{"code":"123456"}`, false, methodTOTP},
		{`{"recovery_code":"abcde-fghij"}`, false, methodRecoveryCode},
		{`{"webauthn":{"id":"x"}}`, false, methodWebAuthn},
		{`{}`, true, methodPassword},
		{`{}`, false, ""},
		{`{"webauthn":null}`, false, ""},
		{`{"code":"123456","recovery_code":"abcde-fghij"}`, false, ""},
		{`{"code":"123456"}`, true, ""},
	} {
		var a factorAnswer
		if err := json.Unmarshal([]byte(c.body), &a); err != nil {
			t.Fatal(err)
		}
		got, err := a.method(c.password)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("%s (password %v): %q %v, want %q", c.body, c.password, got, err, c.want)
		}
	}
}

// FuzzNormalizeTOTPCode: whatever a client sends as a code, the result is
// an error or exactly six ASCII digits.
func FuzzNormalizeTOTPCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "", "１２３４５６", "12345\xff", strings.Repeat("1", 17)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := normalizeTOTPCode(s)
		if err != nil {
			return
		}
		if len(c) != totpDigits || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("%q normalized to %q", s, c)
		}
	})
}

// FuzzNormalizeRecoveryCode: the result is an error or ten letters of the
// code alphabet, and normalizing is idempotent.
func FuzzNormalizeRecoveryCode(f *testing.F) {
	for _, s := range []string{"abcde-fghij", "ABCDE FGHIJ", "", "abcde-fghi1", "ǅǅǅǅǅ-ǅǅǅǅǅ", "\u212Abcde-fghij"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := normalizeRecoveryCode(s)
		if err != nil {
			return
		}
		if len(c) != recoveryCodeLen || strings.Trim(c, recoveryCodeAlphabet) != "" {
			t.Fatalf("%q normalized to %q", s, c)
		}
		if again, err := normalizeRecoveryCode(c); err != nil || again != c {
			t.Fatalf("not idempotent: %q -> %q -> %q %v", s, c, again, err)
		}
	})
}

// FuzzLoginMFABody: the second step's body as the handler reads it (after
// the strict decoder): an answer is refused or names exactly one method,
// and a refused one never reaches a check.
func FuzzLoginMFABody(f *testing.F) {
	for _, s := range []string{`{"mfa_token":"x","code":"123456"}`, `{"mfa_token":"x","recovery_code":"abcde-fghij"}`,
		`{"mfa_token":"x","webauthn":{}}`, `{"mfa_token":"x","code":"1","recovery_code":"2"}`, `{"mfa_token":"x","webauthn":null}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req loginMFARequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		m, err := req.method(false)
		if err != nil {
			return
		}
		n := 0
		for _, given := range []bool{req.Code != "", req.RecoveryCode != "", len(req.WebAuthn) > 0 && string(req.WebAuthn) != "null"} {
			if given {
				n++
			}
		}
		if n != 1 || m == methodPassword {
			t.Fatalf("%s: method %q with %d answers", body, m, n)
		}
	})
}
