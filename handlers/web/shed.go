package web

import (
	"log"
	"net/http"
	"time"

	"pommy.ai/edge/storage"
)

// Shed counts the request against the home's approximate limiter (the
// Workers rate-limit binding at the edge) under name and key, and refuses
// it with 429 and Retry-After past the limit. A limiter fault, or a home
// without a limiter, lets the request through: shedding is a cheap first
// line, and the exact limits that must hold are kept in SQL.
func Shed(r *http.Request, l storage.Limiter, name, key, message string) error {
	if l == nil {
		return nil
	}
	d, err := l.Allow(r.Context(), name, key)
	if err != nil {
		log.Printf("limiter %s: %v (allowing)", name, err)
		return nil
	}
	if !d.Allowed {
		e := Errorf(http.StatusTooManyRequests, "rate_limited", "%s", message)
		e.RetryAfter = RetrySeconds(d.RetryAfter)
		return e
	}
	return nil
}

// RetrySeconds is d as a Retry-After value: whole seconds, rounded up, at
// least 1.
func RetrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
