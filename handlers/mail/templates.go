package mail

import (
	"fmt"
	"html"
	"net/url"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// Templates. Each names the Vars it takes (all required, no others).
const (
	// TemplateVerifyEmail: a link to confirm an address, valid 48 hours.
	// Vars: none.
	TemplateVerifyEmail = "verify_email"
	// TemplatePasswordReset: a link to set a new password, valid 30
	// minutes. Vars: none.
	TemplatePasswordReset = "password_reset"
	// TemplateEmailChange: a link, sent to the NEW address, that confirms
	// it, valid 24 hours. Vars: none.
	TemplateEmailChange = "email_change_confirm"
	// TemplateEmailChanged: a notice to the OLD address that the account's
	// address changed. Vars: new_email.
	TemplateEmailChanged = "email_changed"
	// TemplateInvitation: a link to join an organization, valid 7 days.
	// Vars: organization, inviter (a name or an address), role (owner,
	// admin, agent). The link carries the tenant (the message's Tenant).
	TemplateInvitation = "invitation"
	// TemplatePasswordChanged: a notice after a password change or reset.
	// Vars: none.
	TemplatePasswordChanged = "password_changed"
	// TemplateMFAChanged: a notice that a second factor was added or
	// removed. Vars: what, one of the MFA* codes below (translated), or a
	// short text shown as it is.
	TemplateMFAChanged = "mfa_changed"
	// TemplateSecurityNotice: an audit log security notice. Vars: kind
	// (the notice's kind: login_burst, new_location, …, translated when
	// known), message (the notice's text), organization.
	TemplateSecurityNotice = "security_notice"
	// TemplateNewDevice: a sign-in from a browser the account had not used.
	// Vars: when, ip, place (a country code or "unknown"), user_agent,
	// organization.
	TemplateNewDevice = "new_device"
)

// Codes for TemplateMFAChanged's "what".
const (
	MFATOTPAdded          = "totp_added"
	MFATOTPRemoved        = "totp_removed"
	MFAPasskeyAdded       = "passkey_added"
	MFAPasskeyRemoved     = "passkey_removed"
	MFARecoveryCodesReset = "recovery_codes_regenerated"
)

// template is one kind of mail: the variables it takes, whether it
// carries a link, and its text in each locale.
type template struct {
	vars []string
	// coded are the vars whose value is a code translated through codes
	// (a value without a translation is shown as it is).
	coded []string
	link  bool
	text  map[string]text
}

func (t template) takes(k string) bool {
	for _, v := range t.vars {
		if v == k {
			return true
		}
	}
	return false
}

// text is a template in one language. body is paragraphs of plain text
// with {{name}} placeholders; a paragraph that is exactly "{{link}}" is
// where the link goes (in the HTML part, a link labelled action). Both
// parts are made from the same paragraphs, so they cannot say different
// things.
type text struct {
	subject string
	body    []string
	action  string
}

// chrome is the greeting and the closing lines of every mail, per locale.
var chrome = map[string]struct{ hello, footer, copy string }{
	"en": {"Hello,", "This mail was sent by Pommy. Replies to it are not read.",
		"If the button does not work, copy this address into your browser:"},
	"tr": {"Merhaba,", "Bu e-posta Pommy tarafından gönderildi. Yanıtlar okunmaz.",
		"Düğme çalışmazsa bu adresi tarayıcınıza kopyalayın:"},
}

// codes translate coded values (roles, notice kinds, MFA changes).
var codes = map[string]map[string]string{
	"en": {
		"owner": "owner", "admin": "admin", "agent": "agent",
		"login_burst": "Repeated failed sign-ins", "new_location": "Sign-in from a new place",
		"widget_origin_refused": "Widget used from an unknown website", "webhook.disabled": "Webhook disabled",
		MFATOTPAdded: "an authenticator app was added", MFATOTPRemoved: "the authenticator app was removed",
		MFAPasskeyAdded: "a passkey was added", MFAPasskeyRemoved: "a passkey was removed",
		MFARecoveryCodesReset: "new recovery codes were made (the old ones no longer work)",
	},
	"tr": {
		"owner": "sahip", "admin": "yönetici", "agent": "temsilci",
		"login_burst": "Art arda başarısız girişler", "new_location": "Yeni bir yerden giriş",
		"widget_origin_refused": "Sohbet penceresi tanınmayan bir sitede kullanıldı", "webhook.disabled": "Webhook devre dışı bırakıldı",
		MFATOTPAdded: "bir doğrulama uygulaması eklendi", MFATOTPRemoved: "doğrulama uygulaması kaldırıldı",
		MFAPasskeyAdded: "bir geçiş anahtarı eklendi", MFAPasskeyRemoved: "bir geçiş anahtarı kaldırıldı",
		MFARecoveryCodesReset: "yeni kurtarma kodları oluşturuldu (eskileri artık geçersiz)",
	},
}

var templates = map[string]template{
	TemplateVerifyEmail: {link: true, text: map[string]text{
		"en": {subject: "Confirm your email address",
			body: []string{
				"Please confirm that this address is yours, so that your Pommy account can invite people, create API keys and recover a lost password.",
				"{{link}}",
				"The link works once and expires in 48 hours.",
				"If you did not sign up for Pommy, ignore this mail: nothing happens without the link.",
			}, action: "Confirm my address"},
		"tr": {subject: "E-posta adresinizi doğrulayın",
			body: []string{
				"Lütfen bu adresin size ait olduğunu doğrulayın; böylece Pommy hesabınızla kişi davet edebilir, API anahtarı oluşturabilir ve unutulan bir parolayı sıfırlayabilirsiniz.",
				"{{link}}",
				"Bağlantı yalnızca bir kez çalışır ve 48 saat sonra geçersiz olur.",
				"Pommy'ye siz kaydolmadıysanız bu e-postayı yok sayın: bağlantı kullanılmadıkça hiçbir şey olmaz.",
			}, action: "Adresimi doğrula"},
	}},
	TemplatePasswordReset: {link: true, text: map[string]text{
		"en": {subject: "Reset your Pommy password",
			body: []string{
				"Someone asked to reset the password of the Pommy account with this address. If it was you, choose a new password here:",
				"{{link}}",
				"The link works once and expires in 30 minutes. Setting a new password signs you out everywhere.",
				"If it wasn't you, ignore this mail: your password stays as it is.",
			}, action: "Choose a new password"},
		"tr": {subject: "Pommy parolanızı sıfırlayın",
			body: []string{
				"Bu adrese bağlı Pommy hesabının parolasını sıfırlama isteği geldi. İstek sizden geldiyse yeni parolanızı buradan belirleyin:",
				"{{link}}",
				"Bağlantı yalnızca bir kez çalışır ve 30 dakika sonra geçersiz olur. Yeni parola belirlemek tüm oturumlarınızı kapatır.",
				"İstek sizden gelmediyse bu e-postayı yok sayın: parolanız değişmez.",
			}, action: "Yeni parola belirle"},
	}},
	TemplateEmailChange: {link: true, text: map[string]text{
		"en": {subject: "Confirm your new email address",
			body: []string{
				"You asked to use this address for your Pommy account. Confirm it here:",
				"{{link}}",
				"The link works once and expires in 24 hours. Until then the account keeps its old address.",
				"If you did not ask for this, ignore this mail.",
			}, action: "Confirm the new address"},
		"tr": {subject: "Yeni e-posta adresinizi doğrulayın",
			body: []string{
				"Pommy hesabınız için bu adresi kullanmak istediniz. Buradan doğrulayın:",
				"{{link}}",
				"Bağlantı yalnızca bir kez çalışır ve 24 saat sonra geçersiz olur. O zamana kadar hesap eski adresini kullanır.",
				"Bunu siz istemediyseniz bu e-postayı yok sayın.",
			}, action: "Yeni adresi doğrula"},
	}},
	TemplateEmailChanged: {vars: []string{"new_email"}, text: map[string]text{
		"en": {subject: "The email address of your Pommy account changed",
			body: []string{
				"The email address of your Pommy account was changed to {{new_email}}. Mail about the account now goes there.",
				"If it wasn't you, someone may have your password: contact the owner of your organization or Pommy support at once.",
			}},
		"tr": {subject: "Pommy hesabınızın e-posta adresi değişti",
			body: []string{
				"Pommy hesabınızın e-posta adresi {{new_email}} olarak değiştirildi. Hesapla ilgili e-postalar artık oraya gidecek.",
				"Bunu siz yapmadıysanız parolanız başkasının elinde olabilir: hemen kuruluşunuzun sahibine veya Pommy desteğine başvurun.",
			}},
	}},
	TemplateInvitation: {vars: []string{"organization", "inviter", "role"}, coded: []string{"role"}, link: true, text: map[string]text{
		"en": {subject: "{{inviter}} invited you to {{organization}} on Pommy",
			body: []string{
				"{{inviter}} invited you to join {{organization}} on Pommy, with the role {{role}}.",
				"{{link}}",
				"The invitation works once and expires in 7 days.",
				"If you don't know {{organization}}, ignore this mail: nothing happens without the link.",
			}, action: "Accept the invitation"},
		"tr": {subject: "{{inviter}} sizi Pommy'de {{organization}} kuruluşuna davet etti",
			body: []string{
				"{{inviter}}, sizi Pommy'de {{organization}} kuruluşuna {{role}} olarak katılmaya davet etti.",
				"{{link}}",
				"Davet yalnızca bir kez çalışır ve 7 gün sonra geçersiz olur.",
				"{{organization}} kuruluşunu tanımıyorsanız bu e-postayı yok sayın: bağlantı kullanılmadıkça hiçbir şey olmaz.",
			}, action: "Daveti kabul et"},
	}},
	TemplatePasswordChanged: {text: map[string]text{
		"en": {subject: "Your Pommy password changed",
			body: []string{
				"The password of your Pommy account was just changed, and the account's other sessions were ended.",
				"If it wasn't you, reset your password at once from the sign-in page (\"Forgot your password?\") and tell the owner of your organization.",
			}},
		"tr": {subject: "Pommy parolanız değişti",
			body: []string{
				"Pommy hesabınızın parolası az önce değiştirildi ve hesabın diğer oturumları kapatıldı.",
				"Bunu siz yapmadıysanız hemen giriş sayfasından (\"Parolanızı mı unuttunuz?\") parolanızı sıfırlayın ve kuruluşunuzun sahibine haber verin.",
			}},
	}},
	TemplateMFAChanged: {vars: []string{"what"}, coded: []string{"what"}, text: map[string]text{
		"en": {subject: "The sign-in protection of your Pommy account changed",
			body: []string{
				"A change to how you sign in to Pommy: {{what}}.",
				"If it wasn't you, someone may be signed in as you: reset your password, check your second factors and tell the owner of your organization.",
			}},
		"tr": {subject: "Pommy hesabınızın giriş korumasında değişiklik",
			body: []string{
				"Pommy'ye giriş yönteminizde bir değişiklik oldu: {{what}}.",
				"Bunu siz yapmadıysanız biri sizin adınıza oturum açmış olabilir: parolanızı sıfırlayın, ikinci doğrulama yöntemlerinizi kontrol edin ve kuruluşunuzun sahibine haber verin.",
			}},
	}},
	TemplateSecurityNotice: {vars: []string{"kind", "message", "organization"}, coded: []string{"kind"}, text: map[string]text{
		"en": {subject: "Security notice for {{organization}}: {{kind}}",
			body: []string{
				"Pommy noticed something in {{organization}} that may need your attention: {{kind}}.",
				"Details: {{message}}",
				"If this was expected (you mistyped your password, or signed in while travelling), there is nothing to do. If not, change your password and review the organization's audit log and sessions.",
			}},
		"tr": {subject: "{{organization}} için güvenlik bildirimi: {{kind}}",
			body: []string{
				"Pommy, {{organization}} kuruluşunda dikkatinizi gerektirebilecek bir durum fark etti: {{kind}}.",
				"Ayrıntılar: {{message}}",
				"Bu beklenen bir durumsa (parolanızı yanlış yazdıysanız ya da seyahatteyken giriş yaptıysanız) yapmanız gereken bir şey yok. Değilse parolanızı değiştirin ve kuruluşun denetim kaydını ve oturumlarını gözden geçirin.",
			}},
	}},
	TemplateNewDevice: {vars: []string{"when", "ip", "place", "user_agent", "organization"}, text: map[string]text{
		"en": {subject: "New sign-in to {{organization}} on Pommy",
			body: []string{
				"Your Pommy account signed in to {{organization}} from a browser it had not used before.",
				"When: {{when}}. IP address: {{ip}} (country: {{place}}). Browser: {{user_agent}}.",
				"If it was you, there is nothing to do. If it wasn't, change your password at once and end the sessions you don't know in your account settings.",
			}},
		"tr": {subject: "Pommy'de {{organization}} için yeni giriş",
			body: []string{
				"Pommy hesabınızla, daha önce kullanılmamış bir tarayıcıdan {{organization}} kuruluşuna giriş yapıldı.",
				"Zaman: {{when}}. IP adresi: {{ip}} (ülke: {{place}}). Tarayıcı: {{user_agent}}.",
				"Bu sizseniz yapmanız gereken bir şey yok. Değilseniz hemen parolanızı değiştirin ve hesap ayarlarınızdan tanımadığınız oturumları kapatın.",
			}},
	}},
}

// rendered is a mail's subject and parts.
type rendered struct {
	Subject, Text, HTML string
}

// render fills template name in locale with vars and the link's URL (""
// when the template carries none). Every value is made one line (control
// characters become spaces) and, in the HTML part, escaped; the link must
// be http(s). A placeholder without a value is an error, never a hole.
func render(name, locale string, vars map[string]string, link string) (rendered, error) {
	t, ok := templates[name]
	if !ok {
		return rendered{}, fmt.Errorf("mail: unknown template %q", name)
	}
	tx, ok := t.text[locale]
	if !ok {
		return rendered{}, fmt.Errorf("mail: template %s has no %q text", name, locale)
	}
	if t.link != (link != "") {
		return rendered{}, fmt.Errorf("mail: template %s: link given %v, carries a link %v", name, link != "", t.link)
	}
	if link != "" {
		if u, err := url.Parse(link); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return rendered{}, fmt.Errorf("mail: the link must be an http(s) URL")
		}
	}
	vals := make(map[string]string, len(vars))
	for k, v := range vars {
		vals[k] = oneLine(v)
	}
	for _, k := range t.coded {
		if v, ok := codes[locale][vals[k]]; ok {
			vals[k] = v
		}
	}
	plain := func(s string) string { return s }
	subject, err := expand(tx.subject, vals, plain)
	if err != nil {
		return rendered{}, err
	}
	subject = cut(subject, storage.MaxMailSubject)
	c := chrome[locale]
	var tb, hb strings.Builder
	tb.WriteString(c.hello + "\n\n")
	hb.WriteString(`<!doctype html><html lang="` + locale + `"><head><meta charset="utf-8"><title>` + html.EscapeString(subject) +
		`</title></head><body style="font-family:-apple-system,'Segoe UI',Roboto,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1f2328;max-width:560px;margin:0 auto;padding:24px">`)
	hb.WriteString("<p>" + html.EscapeString(c.hello) + "</p>")
	for _, p := range tx.body {
		if p == "{{link}}" {
			tb.WriteString(link + "\n\n")
			h := html.EscapeString(link)
			hb.WriteString(`<p><a href="` + h + `" style="display:inline-block;padding:10px 18px;background:#1f6feb;color:#fff;text-decoration:none;border-radius:6px">` +
				html.EscapeString(tx.action) + `</a></p><p style="font-size:13px;color:#57606a">` + html.EscapeString(c.copy) +
				`<br><span style="word-break:break-all">` + h + `</span></p>`)
			continue
		}
		s, err := expand(p, vals, plain)
		if err != nil {
			return rendered{}, err
		}
		h, err := expand(html.EscapeString(p), vals, html.EscapeString)
		if err != nil {
			return rendered{}, err
		}
		tb.WriteString(s + "\n\n")
		hb.WriteString("<p>" + h + "</p>")
	}
	tb.WriteString("-- \n" + c.footer + "\n")
	hb.WriteString(`<hr style="border:0;border-top:1px solid #d0d7de"><p style="font-size:13px;color:#57606a">` + html.EscapeString(c.footer) + "</p></body></html>")
	return rendered{Subject: subject, Text: tb.String(), HTML: hb.String()}, nil
}

// expand replaces each {{name}} in s with esc(vals[name]). A name without
// a value, an unclosed or empty placeholder is an error. The values are
// inserted, never re-scanned, so a value holding "{{x}}" stays as it is.
func expand(s string, vals map[string]string, esc func(string) string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.Index(s[i+2:], "}}")
		if j <= 0 {
			return "", fmt.Errorf("mail: template text %q has an unclosed or empty placeholder", cut(s[i:], 40))
		}
		name := s[i+2 : i+2+j]
		v, ok := vals[name]
		if !ok {
			return "", fmt.Errorf("mail: no value for {{%s}}", name)
		}
		b.WriteString(esc(v))
		s = s[i+2+j+2:]
	}
}

// oneLine turns every control character (CR and LF among them) and the
// Unicode line and paragraph separators into a space: a value never
// starts a new line of a header or a paragraph.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// placeholders returns the names of the placeholders in s (for tests).
func placeholders(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return out
		}
		j := strings.Index(s[i+2:], "}}")
		if j < 0 {
			return out
		}
		out = append(out, s[i+2:i+2+j])
		s = s[i+2+j+2:]
	}
}
