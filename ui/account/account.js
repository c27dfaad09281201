// The pages the mailed links open. The link's token is in the URL's
// fragment (#token=…), which the browser never sends to a server; this
// script reads it, takes it out of the address bar and the history, and
// posts it with the form when the person says so.
(function () {
  "use strict";
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
    say("This page does not exist.", "error");
    return;
  }
  section.hidden = false;
  var form = section.querySelector("form");
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) {
    say("This link is incomplete. Open it again from the mail, or copy the whole link into the address bar.", "error");
    form.querySelector("button").disabled = true;
    return;
  }
  var done = {
    verify: "Your email address is verified. You can close this page.",
    email: "Your email address is changed. Sign in with the new address from now on.",
    reset: "Your password is changed, and every device was signed out. Sign in with the new password.",
    invitation: "Welcome: you have joined the team and are signed in."
  };
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { token: token };
    if (page === "reset") {
      var pw = form.elements.new_password.value;
      if (pw !== form.elements.confirm.value) {
        say("The two passwords differ.", "error");
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
    say("Sending…");
    fetch(form.getAttribute("data-action"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (res) {
      if (res.ok) {
        say(done[page], "done");
        form.hidden = true;
        return;
      }
      return res.json().then(function (e) {
        var msg = (e && e.error && e.error.message) || "Something went wrong.";
        // A refused password may be chosen again; a used or late link may not.
        button.disabled = !/^(weak_password|invalid_password|invalid_credentials|invalid_name|too_many_attempts|rate_limited)$/.test(e && e.error && e.error.code);
        say(msg.charAt(0).toUpperCase() + msg.slice(1) + ".", "error");
      });
    }).catch(function () {
      button.disabled = false;
      say("Pommy could not be reached. Check your connection and try again.", "error");
    });
  });
})();
