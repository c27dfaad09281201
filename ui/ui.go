// Package ui holds the web assets the platform serves to browsers, embedded
// into both homes' builds: the chat widget (its loader, the iframe page and
// the chat app) under widget/, and the pages mailed account links open
// (verify an address, reset a password, confirm a new address, accept an
// invitation) under account/. The handlers serve them; nothing here runs
// Go logic.
package ui

import "embed"

// Widget is the widget's files: widget/loader.js (served as /widget.js),
// widget/frame.html (the iframe page's template) and the app's assets.
//
//go:embed widget
var Widget embed.FS

// Account is the account link pages: account/page.html (one page for the
// four links; its script shows the part the path names) and its script
// and style.
//
//go:embed account
var Account embed.FS
