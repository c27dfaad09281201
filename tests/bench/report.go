//go:build !windows

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// report is the markdown document being written: a summary of the figures
// that have targets, then one section per measurement.
type report struct {
	summary [][]string
	body    strings.Builder
	// failures are the runs with failed requests, each a sentence for the
	// top of the report; any makes the bench exit non-zero.
	failures []string
}

// measured checks a run: one with failed requests measured nothing of
// what it was meant to (its figures count only the successful requests,
// of whatever the failures left), so it is named at the top of the report
// and printed now. It reports whether the run was clean.
func (r *report) measured(what string, res result) bool {
	if res.errors == 0 {
		return true
	}
	line := fmt.Sprintf("this run measured nothing for %s: %s of %s requests failed (%s); the first: `%s`",
		what, thousands(int64(res.errors)), thousands(int64(res.errors+res.n)), res.failures(), strings.ReplaceAll(res.firstErr, "`", "'"))
	r.failures = append(r.failures, line)
	progress("  FAILED: %s", line)
	return false
}

// fail names a measurement whose outcome makes the run a failure (frames
// lost, a loss test that lost messages).
func (r *report) fail(line string) {
	r.failures = append(r.failures, line)
	progress("  FAILED: %s", line)
}

// failed is the run's verdict, once the report is written: an error
// naming the measurements whose requests failed, if any did.
func (r *report) failed(path string) error {
	if len(r.failures) == 0 {
		return nil
	}
	for _, f := range r.failures {
		fmt.Fprintln(os.Stderr, "bench: "+f)
	}
	return fmt.Errorf("%d measurement(s) had failed requests and measured nothing (listed at the top of %s)", len(r.failures), path)
}

// metIf is met(ok) for a target measured by runs, or a failure when any of
// them had failed requests.
func metIf(ok bool, runs ...result) string {
	for _, r := range runs {
		if r.errors > 0 {
			return "**not measured: requests failed**"
		}
	}
	return met(ok)
}

// check adds a summary row.
func (r *report) check(figure, measured, target, verdict string) {
	r.summary = append(r.summary, []string{figure, measured, target, verdict})
}

// met is the verdict of a target.
func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *report) section(title string, text ...string) {
	fmt.Fprintf(&r.body, "\n## %s\n\n", title)
	for _, t := range text {
		r.body.WriteString(t + "\n")
	}
	if len(text) > 0 {
		r.body.WriteString("\n")
	}
}

func (r *report) para(format string, args ...any) {
	fmt.Fprintf(&r.body, format+"\n\n", args...)
}

func (r *report) table(header []string, rows [][]string) {
	writeTable(&r.body, header, rows)
	r.body.WriteString("\n")
}

func writeTable(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
}

func (r *report) write(path, head string) error {
	var b strings.Builder
	b.WriteString(head)
	if len(r.failures) > 0 {
		fmt.Fprintf(&b, "\n## THIS RUN FAILED: %d measurement(s) had failed requests\n\n", len(r.failures))
		b.WriteString("A run whose requests failed has measured nothing: its figures below count only the requests that succeeded. ")
		b.WriteString("Fix the cause and run `make bench` again before using any figure of this report.\n\n")
		for _, f := range r.failures {
			b.WriteString("- **" + f + "**\n")
		}
	}
	b.WriteString("\n## Summary\n\n")
	writeTable(&b, []string{"figure", "measured", "target", "met"}, r.summary)
	b.WriteString(r.body.String())
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Formatting helpers.

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

func bytesMB(n int64) string {
	return fmt.Sprintf("%s B (%.2f MB)", thousands(n), float64(n)/1e6)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func rate(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 0, 64) + " %" }

func times(x float64) string {
	if x >= 10 {
		return strconv.FormatFloat(x, 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(x, 'f', 1, 64) + "×"
}

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }
