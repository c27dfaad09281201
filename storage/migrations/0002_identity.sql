-- Migration 0002: people, memberships, invitations, sessions, API key
-- scopes and limits, login throttling and exact rate windows.
-- Plain SQLite, applied unchanged by the host and by D1.

-- Tenant-configurable session timeouts (bounded by the application:
-- idle 5..120 minutes, absolute 60..1440 minutes).
ALTER TABLE tenants ADD COLUMN session_idle_minutes INTEGER NOT NULL DEFAULT 30;
ALTER TABLE tenants ADD COLUMN session_absolute_minutes INTEGER NOT NULL DEFAULT 720;

-- A person. Email is globally unique and stored lowercased; one person can
-- belong to several tenants through memberships.
CREATE TABLE users (
  id                  TEXT PRIMARY KEY,
  email               TEXT NOT NULL UNIQUE,
  name                TEXT NOT NULL DEFAULT '',
  password_hash       TEXT NOT NULL,          -- argon2id PHC string
  password_changed_at INTEGER NOT NULL,
  created_at          INTEGER NOT NULL
);

CREATE TABLE memberships (
  tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
  status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Invitations: the token is shown once; only its SHA-256 is stored.
CREATE TABLE invitations (
  tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  id          TEXT NOT NULL,
  email       TEXT NOT NULL,
  role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
  token_hash  BLOB NOT NULL UNIQUE,
  invited_by  TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  accepted_at INTEGER,
  revoked_at  INTEGER,
  PRIMARY KEY (tenant_id, id)
);

-- Sessions: the token (256 random bits) is held only by the browser, in the
-- __Host-pommy_session cookie; the row keeps its SHA-256. An ended session
-- keeps its row (ended_at set) for the session list and for recognising a
-- person's known IPs; the scheduled sweep deletes old ones.
CREATE TABLE sessions (
  id           TEXT PRIMARY KEY,
  token_hash   BLOB NOT NULL UNIQUE,
  tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  user_id      TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  ip           TEXT NOT NULL DEFAULT '',
  user_agent   TEXT NOT NULL DEFAULT '',
  ended_at     INTEGER,
  ended_reason TEXT
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_user_ip ON sessions (user_id, ip);

-- API keys: a name, scopes ("notes:read notes:write …"), optional expiry,
-- last and first use, and a per-key rate limit. Keys made by the bootstrap
-- of migration 0001 keep the access they had.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN first_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute INTEGER NOT NULL DEFAULT 600;
UPDATE api_keys SET scopes = 'notes:read notes:write members:read members:write settings:read settings:write', name = 'bootstrap' WHERE scopes = '';

-- Login throttling, counted exactly: one row per throttle key (a SHA-256 of
-- "ip:…", "account:…" or "account-ip:…", so no address or email is kept in
-- clear here).
CREATE TABLE login_throttle (
  key             BLOB PRIMARY KEY,
  failures        INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL
);

-- Exact fixed-window counters (per API key, per minute).
CREATE TABLE rate_windows (
  tenant_id    TEXT NOT NULL,
  bucket       TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  count        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, bucket)
);
