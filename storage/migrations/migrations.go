// Package migrations embeds the SQL schema migrations. The same files are
// applied by the host at start and by `wrangler d1 migrations apply` at the
// edge, so they must stay plain SQLite that D1 accepts: no transactions, no
// PRAGMAs, one file per step, named NNNN_name.sql, never edited once landed.
package migrations

import "embed"

// FS holds the NNNN_name.sql files.
//
//go:embed *.sql
var FS embed.FS
