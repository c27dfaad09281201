//go:build !windows

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/browser"
	"pommy.ai/edge/wasm/host"
)

// The widget's figures (issue 8, "Measure"): the loader's size, what a
// visitor downloads to open the chat, the time from the launcher's click
// to an interactive composer, and the message round trip visitor ->
// person -> visitor in Chromium against the same round trip between two
// API clients. Chromium is driven by tests/browser/bench.mjs; this side
// starts the host, the tenant and its site, and writes the report.

var (
	widgetOpenings   = flag.Int("widget-openings", 15, "widget openings timed (new visitors; as many by a returning visitor)")
	widgetRoundTrips = flag.Int("widget-roundtrips", 60, "message round trips visitor -> person -> visitor (in Chromium, and as many between API clients)")
)

// Targets of the issue. KB here is 1,000 bytes (the stricter reading).
const (
	loaderTarget = 5_000
	openTarget   = 30_000
	chatwootKiB  = 170 // Chatwoot's widget, as the issue quotes it
)

// benchOut is what bench.mjs prints on its "BENCH " line.
type benchOut struct {
	Openings, Roundtrips int
	Requests             []struct {
		URL, Type, Encoding     string
		Status, Raw, Gzip, Wire int64
	}
	OnLoad, OnOpen       struct{ N, Raw, Gzip, Wire int64 }
	ColdMs, WarmMs       []float64
	BrowserRtMs, APIRtMs []float64
	Failures             []string
}

func (x *b) widget() error {
	progress("widget: loader size, opening and round trips in Chromium...")
	tools, err := browser.Find(x.root)
	if err != nil {
		return err
	}
	h, err := x.startHost("widget", host.Options{})
	if err != nil {
		return err
	}
	defer h.close()

	// The tenant, its person and its site, as the e2e test makes them.
	var e browser.Env
	if err := catch(func(t testing.TB) {
		c := &apitest.Client{Base: h.url}
		o := c.Signup(t, "Bench Shop")
		e = browser.Env{Platform: h.url, Tenant: o.Tenant, Session: o.Token, Owner: o.UserID, Key: o.NewKey(t, apitest.AllScopes...)}
	}); err != nil {
		return err
	}
	var stop func()
	if e.Site, stop, err = browser.ServeSite(browser.Site(h.url, e.Tenant)); err != nil {
		return err
	}
	defer stop()
	if err := catch(func(t testing.TB) {
		c := &apitest.Client{Base: h.url}
		c.Do(t, "PATCH", "/v1/widget/settings", map[string]any{"allowed_origins": []string{e.Site}},
			"Cookie", apitest.SessionCookie+"="+e.Session, "Sec-Fetch-Site", "same-origin").Expect(t, 200)
	}); err != nil {
		return err
	}

	loaderRaw, loaderWire, loaderGz, err := x.loaderSize(h.url)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var res benchOut
	var got bool
	runErr := tools.Run(ctx, "bench.mjs", e, []string{
		fmt.Sprintf("BENCH_OPENINGS=%d", *widgetOpenings), fmt.Sprintf("BENCH_ROUNDTRIPS=%d", *widgetRoundTrips),
	}, func(line string) {
		if j, ok := strings.CutPrefix(line, "BENCH "); ok {
			got = json.Unmarshal([]byte(j), &res) == nil
			return
		}
		progress("  %s", line)
	})
	x.rep.section("Widget: download size, opening, message round trip in Chromium",
		"Debian's Chromium driven by playwright-core (`tests/browser/bench.mjs`) on the local host (pooled instances, the guest's test build), "+
			"the tenant's site on another loopback origin with the one-line snippet. Sizes are of the bodies the platform sent: raw, "+
			"gzip -9 of each (what a CDN's best compression would ship) and as they came over the wire (the platform's own gzip; "+
			"0 for a body Chromium took from its cache). Times are read inside the browser: the click and the composer's readiness "+
			"(enabled and laid out) on one clock (`performance.timeOrigin + now()` in the page and in the frame); a round trip runs from "+
			"the click on Send to the answer's node in the frame, while a person's API client holding the conversation's stream answers "+
			"each visitor message at once. The baseline is the same round trip with the visitor as an API client on the widget's routes "+
			"and the visitor's stream, no browser.")
	if runErr != nil || !got {
		line := fmt.Sprintf("the widget's browser measurements did not finish: %v", errors.Join(runErr, errIf(!got, "no BENCH line")))
		if len(res.Failures) > 0 {
			line += "; failed requests: " + strings.Join(res.Failures, "; ")
		}
		x.rep.fail(line)
		x.rep.check("widget loader `widget.js`, gzip", thousands(loaderGz)+" B", "≤ 5 KB (5,000 B)", met(loaderGz <= loaderTarget))
		return nil
	}

	// Sizes.
	x.rep.table([]string{"what", "requests", "raw", "gzip -9", "over the wire"}, [][]string{
		{"the loader alone (`/widget.js`)", "1", thousands(loaderRaw) + " B", thousands(loaderGz) + " B", thousands(loaderWire) + " B"},
		{"on the site's load (loader, widget token)", fmt.Sprint(res.OnLoad.N), thousands(res.OnLoad.Raw) + " B", thousands(res.OnLoad.Gzip) + " B", thousands(res.OnLoad.Wire) + " B"},
		{"from the click to an interactive composer", fmt.Sprint(res.OnOpen.N), thousands(res.OnOpen.Raw) + " B", thousands(res.OnOpen.Gzip) + " B", thousands(res.OnOpen.Wire) + " B"},
		{"**everything a visitor downloads to open the chat**", fmt.Sprint(res.OnLoad.N + res.OnOpen.N), thousands(res.OnLoad.Raw+res.OnOpen.Raw) + " B",
			"**" + thousands(res.OnLoad.Gzip+res.OnOpen.Gzip) + " B**", thousands(res.OnLoad.Wire+res.OnOpen.Wire) + " B"},
	})
	var rows [][]string
	for _, r := range res.Requests {
		rows = append(rows, []string{"`" + r.URL + "`", fmt.Sprint(r.Status), r.Type, thousands(r.Raw), thousands(r.Gzip), thousands(r.Wire), cmpOr(r.Encoding, "–")})
	}
	x.rep.para("The first new visitor's requests to the platform, in order (streams, whose bodies never end, count 0):")
	x.rep.table([]string{"request", "status", "type", "raw B", "gzip -9 B", "wire B", "encoding"}, rows)
	total := res.OnLoad.Gzip + res.OnOpen.Gzip
	x.rep.para("Against Chatwoot's widget (about %d KiB = %s B, as the issue quotes it): %s smaller.", chatwootKiB, thousands(chatwootKiB*1024), times(float64(chatwootKiB*1024)/float64(max(total, 1))))

	// Times.
	cold, warm := durations(res.ColdMs), durations(res.WarmMs)
	rtB, rtA := durations(res.BrowserRtMs), durations(res.APIRtMs)
	x.rep.table([]string{"figure", "n", "p50", "p90", "p99", "max"}, [][]string{
		timingRow("click to an interactive composer, new visitor (cold cache)", cold),
		timingRow("click to an interactive composer, returning visitor (page reloaded)", warm),
		timingRow("round trip visitor → person → visitor, Chromium", rtB),
		timingRow("round trip, two API clients (baseline)", rtA),
	})
	ratio := float64(pctD(rtB, 50)) / float64(max(pctD(rtA, 50), 1))
	x.rep.para("The browser's round trip at p50 is %s the API clients' (what the widget adds: rendering, the composer, the frame's event loop).", times(ratio))

	x.rep.check("widget loader `widget.js`, gzip -9", thousands(loaderGz)+" B", "≤ 5 KB (5,000 B)", met(loaderGz <= loaderTarget))
	x.rep.check("widget: everything a visitor downloads to open the chat, gzip -9", thousands(total)+" B", "≤ 30 KB (30,000 B); Chatwoot ~170 KiB", met(total <= openTarget))
	x.rep.check("widget: click to an interactive composer, p50 (new visitor)", ms(pctD(cold, 50)), "(no target)", "–")
	x.rep.check("widget: round trip visitor → person → visitor in Chromium, p50 / p99", ms(pctD(rtB, 50))+" / "+ms(pctD(rtB, 99)),
		"(no target; baseline "+ms(pctD(rtA, 50))+" / "+ms(pctD(rtA, 99))+" between API clients)", "–")
	progress("  loader %d B gzip; open %d B gzip; click→composer p50 %s; round trip p50 %s (API %s)", loaderGz, total, ms(pctD(cold, 50)), ms(pctD(rtB, 50)), ms(pctD(rtA, 50)))
	return nil
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loaderSize fetches /widget.js as a browser would (gzip accepted) and
// returns its decoded size, its size on the wire and the gzip -9 size.
func (x *b) loaderSize(base string) (raw, wire, gz int64, err error) {
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	req, _ := http.NewRequest("GET", base+"/widget.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode != 200 {
		return 0, 0, 0, fmt.Errorf("GET /widget.js: %d", resp.StatusCode)
	}
	wire = int64(len(body))
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, 0, 0, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, 0, 0, err
		}
	}
	return int64(len(body)), wire, gzipSize(body), nil
}

func durations(msList []float64) []time.Duration {
	out := make([]time.Duration, len(msList))
	for i, v := range msList {
		out[i] = time.Duration(v * float64(time.Millisecond))
	}
	slices.Sort(out)
	return out
}

// pctD is the p-th percentile of sorted durations.
func pctD(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func timingRow(what string, s []time.Duration) []string {
	if len(s) == 0 {
		return []string{what, "0", "–", "–", "–", "–"}
	}
	return []string{what, fmt.Sprint(len(s)), ms(pctD(s, 50)), ms(pctD(s, 90)), ms(pctD(s, 99)), ms(s[len(s)-1])}
}
