// Package mail is the application's outbox for mail: a message is queued
// as a job (handlers/jobs) in the batch of the change that causes it,
// rendered from a template (English and Turkish, each with a plain-text
// part) when the job runs, handed to the home's Mailer (storage.Mailer),
// retried with backoff, and recorded in mail_log (to, template, status;
// never the body or a token it carries).
package mail

import "pommy.ai/edge/storage"

// AccountTenant is the mail log's and the jobs table's tenant for mail
// about a person's own account (verification, password reset, email
// change): it belongs to no organization, so no organization can list it.
const AccountTenant = "_accounts"

// PurgeTenantStmts delete a tenant's mail log, for the tenant's deletion.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{{Query: `DELETE FROM mail_log WHERE tenant_id = ?`, Args: []any{tenant}}}
}
