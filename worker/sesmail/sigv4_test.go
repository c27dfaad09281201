package sesmail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestSignMatchesTheSDK: our signature is the SDK's, byte for byte, for
// SendEmail requests (the SDK's signer is the reference here, in the
// tests only; it is not linked into the worker).
func TestSignMatchesTheSDK(t *testing.T) {
	for _, c := range []struct {
		endpoint, region, key, secret, ctype string
		body                                 string
		at                                   time.Time
	}{
		{"https://email.eu-west-1.amazonaws.com", "eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "application/json", `{"a":1}`, time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)},
		{"http://127.0.0.1:41234", "us-east-1", "AKIAPOMMY", "s/e+c=r e t", "application/json", ``, time.Date(2025, 1, 31, 23, 59, 59, 0, time.FixedZone("x", 3*3600))},
		{"https://email-fips.us-gov-west-1.amazonaws.com:443", "us-gov-west-1", "K", "S", "application/json;  charset=utf-8", "ş", time.Unix(0, 0)},
	} {
		sum := sha256.Sum256([]byte(c.body))
		hash := hex.EncodeToString(sum[:])
		mk := func() *http.Request {
			r, err := http.NewRequest("POST", c.endpoint+Path, bytes.NewReader([]byte(c.body)))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", c.ctype)
			return r
		}
		ours := mk()
		signV4(ours, c.key, c.secret, c.region, hash, c.at)
		ref := mk()
		ref.ContentLength = 0 // the SDK would sign content-length too; we do not
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: c.key, SecretAccessKey: c.secret}, ref, hash, "ses", c.region, c.at.UTC()); err != nil {
			t.Fatal(err)
		}
		if got, want := ours.Header.Get("Authorization"), ref.Header.Get("Authorization"); got != want {
			t.Errorf("%s: Authorization\n%s\nwant (SDK)\n%s", c.endpoint, got, want)
		}
		if got, want := ours.Header.Get("X-Amz-Date"), ref.Header.Get("X-Amz-Date"); got != want {
			t.Errorf("X-Amz-Date %q, want %q", got, want)
		}
	}
}
