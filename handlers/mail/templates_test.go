package mail

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// hostile are values a person controls (names, organizations, user
// agents): markup, quotes, line breaks, a placeholder of their own.
var hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	"Ada\r\nBcc: victim@example.com",
	"{{link}}",
	"Şirket & Ortakları 'A.Ş.'",
	"line\u2028separator",
}

func fullVars(t template, v string) map[string]string {
	m := map[string]string{}
	for _, k := range t.vars {
		m[k] = v
	}
	return m
}

const testLink = "https://pommy.example/account/reset#token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func linkFor(t template) string {
	if t.link {
		return testLink
	}
	return ""
}

// Every template renders in both languages with every variable filled,
// and shows every value, escaped in HTML, on one line.
func TestEveryTemplateRendersInBothLanguages(t *testing.T) {
	if len(templates) != 9 {
		t.Fatalf("%d templates, want the 9 Template* constants", len(templates))
	}
	for _, name := range Templates() {
		tm := templates[name]
		for _, locale := range []string{"en", "tr"} {
			for _, v := range hostile {
				r, err := render(name, locale, fullVars(tm, v), linkFor(tm))
				if err != nil {
					t.Fatalf("%s/%s: %v", name, locale, err)
				}
				if r.Subject == "" || r.Text == "" || r.HTML == "" {
					t.Fatalf("%s/%s: an empty part: %+v", name, locale, r)
				}
				if strings.ContainsAny(r.Subject, "\r\n") || strings.Contains(r.Subject, "\u2028") {
					t.Fatalf("%s/%s: subject on more than one line: %q", name, locale, r.Subject)
				}
				for _, bad := range []string{"<script", "<img", "onerror=alert(1)>", "\r\nBcc", "\u2028"} {
					if strings.Contains(r.HTML, bad) {
						t.Fatalf("%s/%s: the HTML part holds %q unescaped:\n%s", name, locale, bad, r.HTML)
					}
				}
				if strings.Contains(r.Text, "\r\nBcc") {
					t.Fatalf("%s/%s: a value broke a line of the text part", name, locale)
				}
				if tm.link {
					if !strings.Contains(r.Text, testLink) || !strings.Contains(r.HTML, `href="`+testLink+`"`) {
						t.Fatalf("%s/%s: the link is missing", name, locale)
					}
				}
				// No placeholder of the template is left (a value's own
				// "{{link}}" is shown as text, never expanded).
				for _, p := range placeholders(strings.Join(tm.text[locale].body, " ")) {
					if p != "link" && strings.Contains(r.Text, "{{"+p+"}}") && v != "{{"+p+"}}" {
						t.Fatalf("%s/%s: {{%s}} left in the text", name, locale, p)
					}
				}
			}
		}
	}
}

// The placeholders of each template are exactly its declared variables,
// in every language, and each language has a subject, a body and (with a
// link) a link paragraph and its label.
func TestTemplatesDeclareWhatTheyUse(t *testing.T) {
	for _, name := range Templates() {
		tm := templates[name]
		if len(tm.text) != 2 {
			t.Errorf("%s: %d languages, want en and tr", name, len(tm.text))
		}
		for locale, tx := range tm.text {
			used := placeholders(tx.subject + " " + strings.Join(tx.body, " "))
			links := 0
			var names []string
			for _, u := range used {
				if u == "link" {
					links++
					continue
				}
				if !tm.takes(u) {
					t.Errorf("%s/%s: {{%s}} is not a declared variable", name, locale, u)
				}
				names = append(names, u)
			}
			for _, v := range tm.vars {
				if !slices.Contains(names, v) {
					t.Errorf("%s/%s: variable %s is declared but never shown", name, locale, v)
				}
			}
			if tm.link != (links == 1) || (tm.link && tx.action == "") {
				t.Errorf("%s/%s: link %v but %d link paragraphs, action %q", name, locale, tm.link, links, tx.action)
			}
			if tx.subject == "" || len(tx.body) == 0 {
				t.Errorf("%s/%s: no subject or body", name, locale)
			}
		}
	}
}

// A missing variable is an error, never an empty hole.
func TestMissingVariableIsAnError(t *testing.T) {
	for _, name := range Templates() {
		tm := templates[name]
		for _, k := range tm.vars {
			vars := fullVars(tm, "x")
			delete(vars, k)
			if _, err := render(name, "en", vars, linkFor(tm)); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s without %s: %v", name, k, err)
			}
		}
	}
	if _, err := expand("Hello {{name", nil, nil); err == nil {
		t.Error("an unclosed placeholder was accepted")
	}
	if _, err := expand("Hello {{}}", map[string]string{"": "x"}, func(s string) string { return s }); err == nil {
		t.Error("an empty placeholder was accepted")
	}
}

// Only an http(s) link is rendered.
func TestLinkMustBeHTTP(t *testing.T) {
	tm := templates[TemplatePasswordReset]
	for _, bad := range []string{"javascript:alert(1)", "data:text/html,<b>x</b>", "//evil.example/x", "mailto:a@b.c", "https://"} {
		if _, err := render(TemplatePasswordReset, "en", fullVars(tm, "x"), bad); err == nil {
			t.Errorf("link %q rendered", bad)
		}
	}
	if _, err := render(TemplatePasswordReset, "en", nil, ""); err == nil {
		t.Error("a link template rendered without its link")
	}
	if _, err := render(TemplatePasswordChanged, "en", nil, testLink); err == nil {
		t.Error("a template without a link rendered one")
	}
	if _, err := render(TemplatePasswordChanged, "de", nil, ""); err == nil {
		t.Error("an unknown locale rendered")
	}
}

// Codes are translated; other values are shown as they are.
func TestCodedValuesAreTranslated(t *testing.T) {
	r, err := render(TemplateInvitation, "tr", map[string]string{"organization": "Acme", "inviter": "Ada", "role": "admin"}, testLink)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Text, "yönetici olarak") {
		t.Fatalf("role not translated:\n%s", r.Text)
	}
	r, err = render(TemplateMFAChanged, "en", map[string]string{"what": "a security key was renamed"}, "")
	if err != nil || !strings.Contains(r.Text, "a security key was renamed") {
		t.Fatalf("%v\n%s", err, r.Text)
	}
}

// A long subject is cut to the Mail limit on a rune boundary.
func TestSubjectIsCut(t *testing.T) {
	long := strings.Repeat("ş", 150)
	r, err := render(TemplateSecurityNotice, "tr", map[string]string{"kind": "login_burst", "message": "m", "organization": long}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Subject) > 200 || !strings.HasPrefix(r.Subject, long[:10]) || strings.ContainsRune(r.Subject, '\uFFFD') {
		t.Fatalf("subject %d bytes: %q", len(r.Subject), r.Subject)
	}
}

// FuzzRender: whatever people put in their names, a template renders, its
// subject is one line, and nothing they typed becomes markup.
func FuzzRender(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, uint8(0))
	}
	f.Add("\xff\xfe", uint8(3))
	names := Templates()
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		name := names[int(which)%len(names)]
		tm := templates[name]
		for _, locale := range []string{"en", "tr"} {
			r, err := render(name, locale, fullVars(tm, v), linkFor(tm))
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(r.Subject, "\r\n") || len(r.Subject) > 200 {
				t.Fatalf("subject %q", r.Subject)
			}
			// The only tags are the template's own.
			clean, err := render(name, locale, fullVars(tm, "x"), linkFor(tm))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(r.HTML, "<") != strings.Count(clean.HTML, "<") {
				t.Fatalf("a value added markup: %q", v)
			}
		}
	})
}

// The largest message any template allows (every variable at its limit,
// the longest event, address and link) fits in a job's payload, so
// Enqueue never hands jobs.Enqueue one it refuses.
func TestLargestMessageFitsAJob(t *testing.T) {
	for _, name := range Templates() {
		tm := templates[name]
		m := Message{Tenant: strings.Repeat("t", maxTenant), Event: strings.Repeat("e", maxEvent), Template: name, Locale: "tr",
			To: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", Vars: map[string]string{}}
		for _, k := range tm.vars {
			m.Vars[k] = strings.Repeat("\u2028", maxVarLen/3)
		}
		if tm.link {
			m.Link = &Link{Origin: "https://" + strings.Repeat("o", 200), Path: "/" + strings.Repeat("p", maxPath-1), Purpose: PurposeInvitation, ID: strings.Repeat("i", maxLinkID)}
		}
		if err := m.check(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		stmts, err := Enqueue(m, time.Unix(0, 0))
		if err != nil || len(stmts) != 2 {
			t.Fatalf("%s: %v", name, err)
		}
		if n := len(stmts[1].Args[4].(string)); n > 16<<10 {
			t.Fatalf("%s: a payload of %d bytes", name, n)
		}
	}
	m := Message{Tenant: "t", Event: "e", To: "a@example.com", Template: TemplatePasswordChanged, Vars: map[string]string{}}
	for i := range maxVars + 1 {
		m.Vars[strings.Repeat("v", i+1)] = "x"
	}
	if _, err := Enqueue(m, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("%d variables: %v", maxVars+1, err)
	}
}
