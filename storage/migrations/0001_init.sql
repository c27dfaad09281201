-- Migration 0001: tenants, their wrapped data keys, API keys, and the first
-- tenant-scoped resource (notes). Plain SQLite, applied unchanged by the host
-- and by `wrangler d1 migrations apply`.

CREATE TABLE tenants (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- One data key per tenant, wrapped by the master key. Deleting the row
-- crypto-shreds everything sealed for the tenant.
CREATE TABLE tenant_keys (
  tenant_id  TEXT PRIMARY KEY,
  wrapped    BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

-- API keys are stored only as HMAC-SHA256 under a server pepper.
CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  hash         BLOB NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  revoked_at   INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Notes: the title is sealed in the row, the body is a sealed blob.
CREATE TABLE notes (
  tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  id             TEXT NOT NULL,
  title_sealed   BLOB NOT NULL,
  body_size      INTEGER NOT NULL,
  attachment_size INTEGER,
  version        INTEGER NOT NULL DEFAULT 1,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notes_tenant_created ON notes (tenant_id, created_at);
