package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"pommy.ai/edge/tests/apitest"
)

var totpN = flag.Int("totp-signins", 30, "sign-ins with a password and a TOTP code timed per home (one person each: a code is accepted once)")

// totpSignIns times sign-ins with a second factor on the home at base: n
// people (plus 2 unmeasured) each set up an authenticator app, then each
// signs in once: POST /v1/login (the password: 401 mfa_required and a
// challenge) and POST /v1/login/mfa (the code: the session). One person
// per sign-in because a code is accepted once and never an older one, so
// one person could sign in only once per 30-second step. both is the two
// requests together, second the second alone.
func (x *b) totpSignIns(base string) (both, second result, err error) {
	ac := &apitest.Client{Base: base, HTTP: x.client}
	type person struct {
		email, secret string
		device        []string // the Cookie pair of the browser that signed up
	}
	people := make([]person, *totpN+2)
	for i := range people {
		if err := catch(func(t testing.TB) {
			s := ac.Signup(t, "Bench TOTP Co")
			people[i].email, people[i].device = s.Email, s.Device
			people[i].secret, _ = s.EnrolTOTP(t)
		}); err != nil {
			return both, second, fmt.Errorf("setting up an authenticator app: %w", err)
		}
	}
	start := time.Now()
	for i, p := range people {
		// From the browser that signed up (its device cookie): a returning
		// person, not a new device (which would also queue a notice mail).
		ip := append([]string{"Content-Type", "application/json", apitest.TestClientIP, fmt.Sprintf("10.78.%d.%d", i/200, i%200+1)}, p.device...)
		code, err := totp.GenerateCode(p.secret, time.Now())
		if err != nil {
			return both, second, err
		}
		login, _ := json.Marshal(map[string]string{"email": p.email, "password": apitest.Password})
		t0 := time.Now()
		status, body, err := request{method: "POST", url: base + "/v1/login", body: login, header: ip}.do(x.client)
		var ch struct {
			Token string `json:"mfa_token"`
		}
		if err != nil || status != 401 || json.Unmarshal(body, &ch) != nil || ch.Token == "" {
			both.fail(status, fmt.Errorf("password step: %d %v %.200s", status, err, body))
			continue
		}
		answer, _ := json.Marshal(map[string]string{"mfa_token": ch.Token, "code": code})
		t1 := time.Now()
		status, body, err = request{method: "POST", url: base + "/v1/login/mfa", body: answer, header: ip}.do(x.client)
		t2 := time.Now()
		if err == nil && status != 200 {
			err = fmt.Errorf("code step: status %d: %.200s", status, body)
		}
		if err != nil {
			both.fail(status, err)
			continue
		}
		if i >= 2 {
			both.lat = append(both.lat, t2.Sub(t0))
			second.lat = append(second.lat, t2.Sub(t1))
		}
	}
	for _, r := range []*result{&both, &second} {
		r.elapsed, r.n = time.Since(start), len(r.lat)
		slices.Sort(r.lat)
	}
	return both, second, nil
}

// reportTOTP writes the sign-in with a second factor: labels[0] is the
// baseline (native handlers).
func (x *b) reportTOTP(labels []string, both, second []result) {
	x.rep.para("**Sign-in with a password and a TOTP code.** %d people per home (after 2 unmeasured) each set up an authenticator app "+
		"(`POST /v1/me/mfa/totp`, then `/confirm`) and then sign in once, from the browser that signed up (its device cookie) at a client address of its own: `POST /v1/login` checks the password "+
		"(argon2id through the `Passwords` port) and answers 401 `mfa_required` with a challenge (a row in `auth_challenges`); `POST /v1/login/mfa` "+
		"opens the person's data key (the custodian's `OpenDataKey`), opens the sealed secret, computes the codes of at most three steps (HMAC-SHA1), spends "+
		"the step and the challenge with conditional UPDATEs and starts the session. One person per sign-in because a code is accepted once and "+
		"never an older one (one person could sign in once per 30-second step). The code is computed by the bench as an app would "+
		"(pquerna/otp), outside the timed span.", *totpN)
	base := func(r []result) float64 { return float64(r[0].pct(50)) }
	var rows [][]string
	for i, l := range labels {
		for _, k := range []struct {
			what string
			r    []result
		}{{"password + code (both requests)", both}, {"`POST /v1/login/mfa` alone", second}} {
			ratio := "1 (baseline)"
			if i > 0 {
				ratio = times(float64(k.r[i].pct(50)) / base(k.r))
			}
			rows = append(rows, []string{l, k.what, ms(k.r[i].pct(50)), ms(k.r[i].pct(99)), strconv.Itoa(k.r[i].n), ratio, strconv.Itoa(k.r[i].errors)})
		}
	}
	x.rep.table([]string{"home", "what", "p50", "p99", "n", "vs native (p50)", "errors"}, rows)
	x.rep.check("sign-in with password + TOTP through the host, p50 (vs native)", ms(both[1].pct(50))+" ("+times(float64(both[1].pct(50))/base(both))+")", "–", "–")
}
