//go:build js && wasm && !pommy_nomail

package main

import (
	"fmt"
	"strings"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
	"pommy.ai/edge/worker/sesmail"
)

// mailer makes the mail service from the MAIL_* variables and secrets:
// nil (no mail service) when none is set, an error naming what is missing
// when only some are. Mail leaves through the same fetch as every other
// outbound request.
func mailer(doer storage.HTTPDoer) (storage.Mailer, error) {
	from, region, endpoint := jsbridge.Var(varMailFrom), jsbridge.Var(varMailRegion), jsbridge.Var(varMailEndpoint)
	id, secret := jsbridge.Var(secretMailKeyID), jsbridge.Var(secretMailKeySecret)
	if from == "" && region == "" && endpoint == "" && id == "" && secret == "" {
		return nil, nil
	}
	var missing []string
	for _, v := range [][2]string{{varMailFrom, from}, {varMailRegion, region}, {secretMailKeyID, id}, {secretMailKeySecret, secret}} {
		if v[1] == "" {
			missing = append(missing, v[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("mail is partly configured: set %s too (wrangler secret put for the secrets; docs/edge.md), or unset every MAIL_ setting", strings.Join(missing, ", "))
	}
	m, err := sesmail.New(sesmail.Config{Region: region, Endpoint: endpoint, AccessKeyID: id, SecretAccessKey: secret, From: from, HTTP: doer})
	if err != nil {
		return nil, fmt.Errorf("mail: %v", err)
	}
	return m, nil
}
