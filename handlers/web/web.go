// Package web is the kit every capability package under handlers/ shares:
// the authenticated tenant scope a route runs with, the one error shape and
// its writer, the one strict JSON decoding path and the JSON writer, ids,
// timestamps, and what the application knows about the client.
//
// It sits below every capability package and imports none of them (only
// handlers/audit, the log a scope records data access in, and handlers/
// strictjson). The root package handlers, above them all, holds the route
// table and the authorization middleware that make a Scope; nothing here
// can make one from a request by itself.
package web

import (
	"net/http"
)

// Handler is the shape of an authenticated route: it runs with the tenant
// scope the authorization middleware resolved from the request's credential.
// An error it returns is written by WriteError.
type Handler func(http.ResponseWriter, *http.Request, *Scope) error

// PublicHandler is the shape of a route that needs no credential.
type PublicHandler func(http.ResponseWriter, *http.Request) error
