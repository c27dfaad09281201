package identity

import (
	"io/fs"
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/ui"
)

// The pages that mailed account links open (ui/account): one static page
// for the four of them, whose script shows the part the path names, reads
// the token from the URL's fragment and posts it to the API when the
// person submits the form. Nothing is rendered per request, so the page
// holds no data, and it runs under a CSP that allows only its own script,
// style and API calls.

// pageCSP: own script, style and fetches only; no inline code, no
// framing, no form posting anywhere (the script posts with fetch).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var accountPages = map[string]bool{"verify": true, "reset": true, "email": true, "invitation": true}

var accountAssets = map[string]string{
	"account.js":  "text/javascript; charset=utf-8",
	"account.css": "text/css; charset=utf-8",
}

// AccountPage serves GET /account/{page}.
func (svc *Service) AccountPage(w http.ResponseWriter, r *http.Request) error {
	if !accountPages[r.PathValue("page")] {
		return web.Errorf(http.StatusNotFound, "not_found", "no such page")
	}
	return serveUI(w, r, "account/page.html", "text/html; charset=utf-8", "no-store")
}

// AccountAsset serves GET /account/assets/{name}: the pages' script and
// style.
func (svc *Service) AccountAsset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ctype, ok := accountAssets[name]
	if !ok {
		return web.Errorf(http.StatusNotFound, "not_found", "no such file")
	}
	return serveUI(w, r, "account/"+name, ctype, "public, max-age=300")
}

func serveUI(w http.ResponseWriter, r *http.Request, name, ctype, cache string) error {
	b, err := fs.ReadFile(ui.Account, name)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cache)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}
