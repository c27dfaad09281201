-- Migration 0013: accounts people can keep: mail (an outbox over the jobs
-- table and its log), verified addresses and one-time account links
-- (verification, password reset, email change), second factors (TOTP,
-- recovery codes, WebAuthn passkeys), the sign-in challenges between a
-- password and a second factor, how each session was authenticated (for
-- step-up), and the tenant's MFA and notice policies.
-- Plain SQLite, applied unchanged by the host and by D1.

-- ---- people ----------------------------------------------------------------
-- When the person proved they read mail at their address (NULL: not yet;
-- accounts made before this migration start unverified).
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
-- The language of the mail they get ('en' or 'tr').
ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';
-- The person's own data key, wrapped under the master key with associated
-- data "user:<id>": it seals their TOTP secret. An account spans tenants,
-- so no tenant's key may hold it.
ALTER TABLE users ADD COLUMN key_wrapped BLOB;

-- ---- sessions ---------------------------------------------------------------
-- How the session was authenticated, space-separated, in order:
-- "password", "password totp", "password recovery_code", "password webauthn",
-- "passkey". A session made before this migration was made by a password.
ALTER TABLE sessions ADD COLUMN auth_methods TEXT NOT NULL DEFAULT 'password';
-- The last time this session proved a password or a second factor (the
-- sign-in itself, or a step-up); NULL means created_at. Dangerous actions
-- need it to be recent.
ALTER TABLE sessions ADD COLUMN reauth_at INTEGER;

-- ---- tenant policy ---------------------------------------------------------
-- Who must use a second factor: nobody extra ('off'), owners and admins
-- ('admins'), or every member ('everyone').
ALTER TABLE tenants ADD COLUMN mfa_required TEXT NOT NULL DEFAULT 'off' CHECK (mfa_required IN ('off', 'admins', 'everyone'));
-- Whether security notices about a member are also mailed to the owners.
ALTER TABLE tenants ADD COLUMN notices_to_owners INTEGER NOT NULL DEFAULT 1;

-- ---- one-time account links -------------------------------------------------
-- A link mailed to a person: verify an address, reset a password, confirm
-- a new address. The token in the link is derived from id under a key only
-- the custodian holds (Keys.MAC), so the job that mails it can recompute it
-- and no table or job payload ever holds it; token_hash (SHA-256 of the
-- token) is how a presented token is found. A person's account spans
-- tenants: these rows belong to no tenant.
CREATE TABLE account_tokens (
  id         TEXT PRIMARY KEY,
  purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset', 'email_change')),
  user_id    TEXT NOT NULL,
  email      TEXT NOT NULL,     -- where the link was sent (the new address for email_change)
  token_hash BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER,
  revoked_at INTEGER            -- a newer link of the same purpose replaced it
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose, created_at);

-- ---- mail ---------------------------------------------------------------------
-- What was mailed, to whom, with which template, and how it went: never
-- the message's body or the token a link carries. tenant_id is the tenant
-- the mail is about, or '_accounts' for mail about a person's own account
-- (verification, reset, email change), which no tenant may read. id is
-- derived from the event the mail is for, so one event queues one mail.
CREATE TABLE mail_log (
  tenant_id   TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  job_id      TEXT    NOT NULL,
  to_addr     TEXT    NOT NULL,
  template    TEXT    NOT NULL,
  locale      TEXT    NOT NULL,
  status      TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  provider_id TEXT,             -- the mail service's id once it accepted the message
  last_error  TEXT,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  sent_at     INTEGER,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mail_log_created ON mail_log (tenant_id, created_at);

-- ---- second factors ----------------------------------------------------------
-- One TOTP authenticator per person (RFC 6238, SHA-1, 6 digits, 30 s).
-- The secret is sealed under the person's data key (users.key_wrapped) with
-- associated data "totp:<user>". last_step is the highest time step ever
-- accepted: a code is accepted once, and never an older one.
CREATE TABLE mfa_totp (
  user_id       TEXT    PRIMARY KEY,
  secret_sealed BLOB    NOT NULL,
  created_at    INTEGER NOT NULL,
  confirmed_at  INTEGER,        -- NULL until a first code proved the enrolment
  last_step     INTEGER NOT NULL DEFAULT 0
);

-- Ten single-use recovery codes per person; only their MAC is kept.
CREATE TABLE mfa_recovery_codes (
  user_id    TEXT    NOT NULL,
  code_hash  BLOB    NOT NULL,
  created_at INTEGER NOT NULL,
  used_at    INTEGER,
  PRIMARY KEY (user_id, code_hash)
);

-- WebAuthn credentials (passkeys and security keys), a person's across
-- tenants. credential is the record as JSON (COSE public key and its
-- algorithm, AAGUID, transports, backup eligibility, attestation "none"):
-- public data, no secret. sign_count is the authenticator's counter, only
-- ever raised (a conditional UPDATE): one that does not move up means a
-- cloned authenticator. backed_up is the last seen BS flag (a synced
-- passkey).
CREATE TABLE webauthn_credentials (
  id            TEXT    PRIMARY KEY,
  user_id       TEXT    NOT NULL,
  credential_id BLOB    NOT NULL UNIQUE,
  credential    TEXT    NOT NULL,
  name          TEXT    NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  sign_count    INTEGER NOT NULL DEFAULT 0,
  backed_up     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);

-- A sign-in or enrolment in progress: a password accepted and a second
-- factor awaited ('mfa'), a passwordless passkey sign-in ('passkey_login'),
-- a passkey being registered ('webauthn_register'), a step-up's WebAuthn
-- challenge ('reauth'). The client holds a random token; only its SHA-256 is
-- here. data is JSON: the WebAuthn session data (its challenge), the
-- methods offered. attempts counts wrong answers; a challenge is used once.
CREATE TABLE auth_challenges (
  id         TEXT    PRIMARY KEY,
  token_hash BLOB    NOT NULL UNIQUE,
  kind       TEXT    NOT NULL CHECK (kind IN ('mfa', 'passkey_login', 'webauthn_register', 'reauth')),
  user_id    TEXT,              -- NULL for a passwordless sign-in until the credential names the person
  tenant_id  TEXT,              -- the organization the sign-in is for, when known
  data       TEXT    NOT NULL DEFAULT '{}',
  attempts   INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER
);
CREATE INDEX auth_challenges_expires ON auth_challenges (expires_at);

-- ---- account flows: invitations by mail ---------------------------------------
-- The mail an invitation was last sent with (its mail_log id; NULL: never
-- mailed, as for invitations made before this migration), and how many
-- mails it has had: the first is the event "invite:<id>", a resend n the
-- event "invite:<id>:<n>", so each resend is one mail and a retried
-- request is not a second one.
ALTER TABLE invitations ADD COLUMN mail_id TEXT;
ALTER TABLE invitations ADD COLUMN mail_count INTEGER NOT NULL DEFAULT 0;
