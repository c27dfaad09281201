package e2e

import (
	"testing"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/tests/widgettest"
)

// TestWidgetIdentity runs the widget's identity verification against the
// compiled guest, with the tenant's JWTs signed by jose from npm
// (tests/jwtsign): the good token, the classic forgeries, secret rotation
// and enforce mode (widgettest.Identity says which). Every exchange is
// held to docs/openapi.yaml.
func TestWidgetIdentity(t *testing.T) {
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	openapi.Attach(t, c)
	widgettest.Identity(t, c)
}
