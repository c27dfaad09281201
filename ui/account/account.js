// The pages the mailed links open. The link's token is in the URL's
// fragment (#token=…), which the browser never sends to a server; this
// script reads it, takes it out of the address bar and the history, and
// posts it with the form when the person says so.
(function () {
  "use strict";
  // English, or Turkish for a browser that prefers it (the link carries
  // no language; the mail it came in was in the person's).
  var tr = /^tr\b/i.test((navigator.languages && navigator.languages[0]) || navigator.language || "");
  var T = {
    title: "Pommy hesabınız",
    verify_h: "E-posta adresinizi doğrulayın", verify_p: "Bu adresin size ait olduğunu onaylayın.", verify_b: "Adresimi doğrula",
    email_h: "Yeni e-posta adresinizi onaylayın", email_p: "Pommy hesabınız bundan sonra bu adresi kullanacak.", email_b: "Bu adresi kullan",
    reset_h: "Yeni bir parola seçin", reset_p: "Hesabınızda oturumu açık olan tüm cihazlarda oturum kapatılacak.",
    reset_l1: "Yeni parola (8 ile 128 karakter arası)", reset_l2: "Yeni parola (tekrar)", reset_b: "Yeni parolayı kaydet",
    inv_h: "Pommy'de ekibinize katılın", inv_p: "Bu adresle zaten bir Pommy hesabınız varsa onun parolasını girin; yoksa yeni bir parola seçin.",
    inv_l1: "Adınız (isteğe bağlı)", inv_l2: "Parola", inv_b: "Katıl",
    done_verify: "E-posta adresiniz doğrulandı. Bu sayfayı kapatabilirsiniz.",
    done_email: "E-posta adresiniz değiştirildi. Bundan sonra yeni adresinizle oturum açın.",
    done_reset: "Parolanız değiştirildi ve tüm cihazlarda oturum kapatıldı. Yeni parolanızla oturum açın.",
    done_invitation: "Hoş geldiniz: ekibe katıldınız ve oturumunuz açıldı.",
    incomplete: "Bu bağlantı eksik. E-postadaki bağlantıyı yeniden açın ya da bağlantının tamamını adres çubuğuna kopyalayın.",
    mismatch: "Girdiğiniz iki parola birbirinden farklı.", sending: "Gönderiliyor…", nopage: "Böyle bir sayfa yok.",
    offline: "Pommy'ye ulaşılamadı. Bağlantınızı kontrol edip yeniden deneyin.", error: "Bir şeyler ters gitti.",
    invalid_link: "Bu bağlantı geçerli değil: size gönderdiğimiz en yeni e-postayı açın ya da yeni bir bağlantı isteyin.",
    link_used: "Bu bağlantı zaten kullanıldı; gerekiyorsa yeni bir bağlantı isteyin.",
    link_expired: "Bu bağlantının süresi doldu ya da yerine daha yenisi gönderildi; yeni bir bağlantı isteyin.",
    account_disabled: "Bu hesabın hiçbir kuruluşta etkin üyeliği yok; bir kuruluş sahibinden hesabınızı etkinleştirmesini isteyin.",
    weak_password: "Bu parola kabul edilmedi: 8 ile 128 karakter arası, çok yaygın olmayan bir parola seçin."
  };
  var E = {
    done_verify: "Your email address is verified. You can close this page.",
    done_email: "Your email address is changed. Sign in with the new address from now on.",
    done_reset: "Your password is changed, and every device was signed out. Sign in with the new password.",
    done_invitation: "Welcome: you have joined the team and are signed in.",
    incomplete: "This link is incomplete. Open it again from the mail, or copy the whole link into the address bar.",
    mismatch: "The two passwords differ.", sending: "Sending…", nopage: "This page does not exist.",
    offline: "Pommy could not be reached. Check your connection and try again.", error: "Something went wrong."
  };
  function t(key) { return (tr && T[key]) || E[key] || ""; }
  if (tr) {
    document.documentElement.lang = "tr";
    document.title = T.title;
    Array.prototype.forEach.call(document.querySelectorAll("[data-t]"), function (el) {
      var v = T[el.getAttribute("data-t")];
      if (v) el.textContent = v;
    });
  }
  var page = location.pathname.replace(/^\/account\//, "");
  var section = document.getElementById(page);
  var status = document.getElementById("status");
  var params = new URLSearchParams(location.hash.slice(1));
  var token = params.get("token") || "";
  if (location.hash) {
    history.replaceState(null, "", location.pathname);
  }
  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }
  if (!section) {
    say(t("nopage"), "error");
    return;
  }
  section.hidden = false;
  var form = section.querySelector("form");
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) {
    say(t("incomplete"), "error");
    form.querySelector("button").disabled = true;
    return;
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { token: token };
    if (page === "reset") {
      var pw = form.elements.new_password.value;
      if (pw !== form.elements.confirm.value) {
        say(t("mismatch"), "error");
        return;
      }
      body.new_password = pw;
    }
    if (page === "invitation") {
      body.password = form.elements.password.value;
      if (form.elements.name.value.trim() !== "") {
        body.name = form.elements.name.value;
      }
    }
    var button = form.querySelector("button");
    button.disabled = true;
    say(t("sending"));
    fetch(form.getAttribute("data-action"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (res) {
      if (res.ok) {
        say(t("done_" + page), "done");
        form.hidden = true;
        return;
      }
      return res.json().then(function (e) {
        var code = e && e.error && e.error.code;
        var msg = (tr && T[code]) || (e && e.error && e.error.message) || t("error");
        // A refused password may be chosen again; a used or late link may not.
        button.disabled = !/^(weak_password|invalid_password|invalid_credentials|invalid_name|too_many_attempts|rate_limited)$/.test(code);
        say(msg.charAt(0).toUpperCase() + msg.slice(1) + (/[.!?]$/.test(msg) ? "" : "."), "error");
      });
    }).catch(function () {
      button.disabled = false;
      say(t("offline"), "error");
    });
  });
})();
