// Package ui holds the web assets the platform serves to browsers, embedded
// into both homes' builds: the chat widget (its loader, the iframe page and
// the chat app) under widget/. The handlers serve them; nothing here runs
// Go logic.
package ui

import "embed"

// Widget is the widget's files: widget/loader.js (served as /widget.js),
// widget/frame.html (the iframe page's template) and the app's assets.
//
//go:embed widget
var Widget embed.FS
