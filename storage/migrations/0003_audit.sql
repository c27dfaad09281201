-- Migration 0003: the tenant audit log (see docs/audit.md). Plain SQLite,
-- applied unchanged by the host and by `wrangler d1 migrations apply`: no
-- triggers (wrangler's remote splitter mishandles BEGIN ... END bodies), no
-- foreign keys to tenants (the log must not vanish by cascade; tenant purge
-- deletes it explicitly with audit.PurgeTenantStmts).

-- One row per event; each tenant's rows form a SHA-256 hash chain in seq
-- order: hash = SHA-256(prev_hash || canonical(event)), prev_hash of seq 1 is
-- 32 zero bytes. Rows are only ever inserted; Prune deletes the oldest.
CREATE TABLE audit_events (
  tenant_id  TEXT    NOT NULL,
  seq        INTEGER NOT NULL,
  at         INTEGER NOT NULL,          -- Unix milliseconds, UTC
  actor_type TEXT    NOT NULL,
  actor_id   TEXT    NOT NULL,
  action     TEXT    NOT NULL,
  target     TEXT    NOT NULL,
  ip         TEXT    NOT NULL,
  user_agent TEXT    NOT NULL,
  request_id TEXT    NOT NULL,
  details    TEXT    NOT NULL,          -- JSON object of strings, keys sorted
  prev_hash  BLOB    NOT NULL,
  hash       BLOB    NOT NULL,
  PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_at     ON audit_events (tenant_id, at);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, at);
CREATE INDEX audit_events_actor  ON audit_events (tenant_id, actor_id, at);
CREATE INDEX audit_events_target ON audit_events (tenant_id, target, at);
CREATE INDEX audit_events_ip     ON audit_events (tenant_id, ip, at);

-- The chain's head, written in the same batch as every event, so that
-- deleting the newest events (truncation) is detected by Verify.
CREATE TABLE audit_heads (
  tenant_id TEXT    PRIMARY KEY,
  seq       INTEGER NOT NULL,
  hash      BLOB    NOT NULL
);

-- Where verification starts after Prune: the seq and hash of the newest
-- pruned event. Every checkpoint is attested by an "audit.pruned" event in
-- the retained chain that names the same seq and hash.
CREATE TABLE audit_checkpoints (
  tenant_id TEXT    PRIMARY KEY,
  seq       INTEGER NOT NULL,
  hash      BLOB    NOT NULL,
  at        INTEGER NOT NULL
);

-- Retention in days; no row means the default (365). Never below 90 and
-- only ever raised (audit.SetRetention enforces both; the CHECK is a floor).
CREATE TABLE audit_settings (
  tenant_id      TEXT    PRIMARY KEY,
  retention_days INTEGER NOT NULL CHECK (retention_days >= 90),
  updated_at     INTEGER NOT NULL
);

-- Security notices for the tenant's owners (login bursts, new locations).
-- dedupe makes each notice once-only (e.g. one burst notice per account
-- per 15-minute window).
CREATE TABLE security_notices (
  tenant_id TEXT    NOT NULL,
  id        TEXT    NOT NULL,
  at        INTEGER NOT NULL,
  kind      TEXT    NOT NULL,
  message   TEXT    NOT NULL,
  dedupe    TEXT    NOT NULL,
  read_at   INTEGER,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, dedupe)
);
CREATE INDEX security_notices_at ON security_notices (tenant_id, at);
