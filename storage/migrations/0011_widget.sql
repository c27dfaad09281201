-- Migration 0011 (issue 8): the embedded chat widget's settings, one row per
-- tenant (no row: the defaults of handlers/widget, which allow no origin, so
-- a tenant has no widget until an owner lists one). The widget capability
-- reads this row on every widget request (allowed origins, identity mode), so
-- a removed origin or a switch to enforce takes effect at once.
CREATE TABLE widget_settings (
  tenant_id              TEXT    PRIMARY KEY,
  -- The non-secret settings (greeting, hours, pre-chat form, look, agent
  -- name, CSAT, attachment limit) as one JSON object, validated by the
  -- widget capability before it is written.
  settings               TEXT    NOT NULL,
  -- JSON array of normalized origins (scheme://host[:port]).
  allowed_origins        TEXT    NOT NULL,
  identity_mode          TEXT    NOT NULL CHECK (identity_mode IN ('off', 'optional', 'enforce')),
  -- The identity JWT secret, sealed under the tenant's data key with
  -- associated data (tenant, "widget.identity_secret", tenant); NULL when
  -- none was made.
  identity_secret_sealed BLOB,
  -- Bumped by every write; writes are conditional on it (no lost update).
  version                INTEGER NOT NULL,
  updated_at             INTEGER NOT NULL
);
