package widget

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers/strictjson"
	"pommy.ai/edge/handlers/web"
)

// testMAC stands in for the key custodian's MAC in the fuzz targets.
func testMAC(purpose string) macFunc {
	return func(msg []byte) ([]byte, error) {
		m := hmac.New(sha256.New, []byte("fuzz key "+purpose))
		m.Write(msg)
		return m.Sum(nil), nil
	}
}

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// FuzzParseWidgetToken: arbitrary strings never panic, and nothing but a
// token made with the key verifies (a forged MAC would have to be found
// by the fuzzer, which it cannot).
func FuzzParseWidgetToken(f *testing.F) {
	mac := testMAC(macPurposeWidget)
	good, _ := marshal(widgetClaims{T: "t_a", O: "https://shop.example", E: fuzzNow.Unix() + 60, N: "00"})
	tok, _ := encodeToken("wt_", good, mac)
	for _, s := range []string{tok, tok[:len(tok)-2], "wt_.", "wt_e30." + strings.Repeat("A", 43), "wt_" + strings.Repeat("A", 600), tok + "." + tok} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseWidget(s, mac, fuzzNow)
		if err != nil {
			return
		}
		if c.T == "" || c.O == "" || c.E <= fuzzNow.Unix() {
			t.Fatalf("accepted incomplete claims %+v", c)
		}
		if _, err := parseWidget(s, testMAC("another key"), fuzzNow); err == nil {
			t.Fatal("verified under another key")
		}
	})
}

// FuzzParseVisitorToken: as FuzzParseWidgetToken, for visitor tokens.
func FuzzParseVisitorToken(f *testing.F) {
	mac := testMAC(macPurposeVisitor)
	good, _ := marshal(visitorClaims{T: "t_a", C: "ct_x", V: true, N: "Ayşe", M: "a@example.com", E: fuzzNow.Unix() + 60})
	tok, _ := encodeToken("vt_", good, mac)
	for _, s := range []string{tok, "vt_" + tok[3:10], "vt_eyJ0IjoidCJ9." + strings.Repeat("_", 43), strings.Repeat("vt_", 900)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseVisitor(s, mac, fuzzNow)
		if err != nil {
			return
		}
		if c.T == "" || !strings.HasPrefix(c.C, "ct_") || (!c.V && c.N+c.M != "") || len(s) > maxVisitorToken {
			t.Fatalf("accepted %+v", c)
		}
		if _, err := parseVisitor(s, testMAC("another key"), fuzzNow); err == nil {
			t.Fatal("verified under another key")
		}
	})
}

// FuzzVerifyIdentity: arbitrary strings never panic and never verify
// without the secret; what verifies meets every rule.
func FuzzVerifyIdentity(f *testing.F) {
	secret := []byte("wis_fuzz-secret")
	for _, s := range []string{
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1IiwiZXhwIjoxNzcyMzY2NTAwfQ.x",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxNzcyMzY2NTAwfQ.",
		"..", "a.b.c.d", strings.Repeat("a", 5000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := verifyIdentity(s, secret, fuzzNow)
		if err != nil {
			if strings.Contains(err.Error(), s) && len(s) > 8 {
				t.Fatalf("the error echoes the token: %v", err)
			}
			return
		}
		// Only a token signed with the secret verifies; the fuzzer cannot
		// sign, so reaching here is a forgery.
		t.Fatalf("verified without the secret: %+v", id)
	})
}

// FuzzSettingsUpdate: a PATCH body, as strictjson lets it through, never
// panics apply, and whatever apply accepts is within the settings' rules.
func FuzzSettingsUpdate(f *testing.F) {
	for _, s := range []string{
		`{"allowed_origins": ["https://a.example", "HTTP://B.example:80"], "color": "#AbCdEf"}`,
		`{"business_hours": {"timezone": "Europe/Istanbul", "week": {"mon": [["09:00", "18:00"]], "sun": null}}}`,
		`{"business_hours": null, "pre_chat": {"enabled": true, "fields": [{"name": "email", "required": true}]}}`,
		`{"greeting": "a\nb", "attachment_max_bytes": 1024, "identity": "enforce", "locale": "tr", "position": "left"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req settingsUpdate
		if err := strictjson.Decode(body, &req); err != nil {
			return
		}
		rec := &record{look: defaults(), Identity: IdentityOff}
		if err := apply(rec, &req); err != nil {
			return
		}
		if len(rec.Origins) > MaxAllowedOrigins || !validColor(rec.Color) || rec.AttachmentMaxBytes < MinAttachmentBytes || rec.AttachmentMaxBytes > DefaultAttachmentBytes {
			t.Fatalf("accepted %+v", rec)
		}
		for _, o := range rec.Origins {
			if n, err := web.ParseOrigin(o); err != nil || n != o {
				t.Fatalf("accepted origin %q", o)
			}
		}
		if bh := rec.BusinessHours; bh != nil {
			if !validZone(bh.Timezone) || len(bh.Week) != 7 {
				t.Fatalf("accepted hours %+v", bh)
			}
			for _, ivs := range bh.Week {
				for _, iv := range ivs {
					if !validTime(iv[0]) || !validTime(iv[1]) || iv[0] >= iv[1] {
						t.Fatalf("accepted interval %v", iv)
					}
				}
			}
		}
		if !cleanText(strings.ReplaceAll(rec.Greeting, "\n", " ")) || !cleanText(strings.ReplaceAll(rec.OfflineMessage, "\n", " ")) {
			t.Fatalf("accepted text %q %q", rec.Greeting, rec.OfflineMessage)
		}
	})
}

// TestPlatformOrigin: the frame URL is on the origin the loader reached.
func TestPlatformOrigin(t *testing.T) {
	req := func(target, host string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = host
		return r
	}
	abs := req("/v1/widget/token", "chat.example")
	abs.URL.Scheme = "https"
	for _, tc := range []struct {
		svc  *Service
		r    *http.Request
		want string
	}{
		{&Service{}, req("/v1/widget/token", "127.0.0.1:8080"), "http://127.0.0.1:8080"},
		{&Service{}, req("https://chat.example/v1/widget/token", "chat.example"), "https://chat.example"},
		{&Service{}, abs, "https://chat.example"},
		{&Service{publicOrigins: []string{"https://a.example", "https://b.example"}}, req("/x", "b.example"), "https://b.example"},
		{&Service{publicOrigins: []string{"https://a.example"}}, req("/x", "evil.example"), "https://a.example"},
	} {
		if got := tc.svc.platformOrigin(tc.r); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.r.Host, tc.r.URL, got, tc.want)
		}
	}
}
