-- Migration 0008: background jobs (an outbox leased by conditional UPDATEs)
-- and signed webhooks. Plain SQLite, applied unchanged by the host and D1.

-- One row per unit of work to do after a request (handlers/jobs). A job is
-- inserted in the same batch as the change that causes it, taken by a
-- conditional UPDATE that sets a lease (state 'running', lease_until,
-- leased_by), and finished by an UPDATE conditional on that lease: a runner
-- whose lease expired cannot overwrite the outcome of the one that took the
-- job over. payload is JSON and holds references (ids, sequence numbers),
-- never sealed content or secrets.
CREATE TABLE jobs (
  tenant_id    TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  kind         TEXT    NOT NULL,
  ref          TEXT    NOT NULL DEFAULT '',  -- what the job works for (a webhook id), for listings
  payload      TEXT    NOT NULL,
  state        TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
  run_at       INTEGER NOT NULL,             -- Unix ms: not before
  attempts     INTEGER NOT NULL DEFAULT 0,   -- counted when taken, so a crash mid-run counts
  max_attempts INTEGER NOT NULL,
  lease_until  INTEGER,
  leased_by    TEXT,
  last_error   TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
-- The runner's two questions: what is due, and whose lease has expired.
CREATE INDEX jobs_due   ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
CREATE INDEX jobs_ref   ON jobs (tenant_id, ref, created_at, id);

-- Webhook subscriptions (Standard Webhooks). The signing secret is sealed
-- with the tenant's data key (kind "webhook.secret", id = the webhook id);
-- during a rotation the previous one stays valid until prev_until.
CREATE TABLE webhooks (
  tenant_id     TEXT    NOT NULL,
  id            TEXT    NOT NULL,
  url           TEXT    NOT NULL,
  events        TEXT    NOT NULL,            -- space-separated event types
  description   TEXT    NOT NULL DEFAULT '',
  enabled       INTEGER NOT NULL DEFAULT 1,
  secret_sealed BLOB    NOT NULL,
  prev_sealed   BLOB,
  prev_until    INTEGER,
  -- Failure tracking for automatic disabling: dead deliveries in a row and
  -- since when the endpoint has failed without a success.
  dead_streak   INTEGER NOT NULL DEFAULT 0,
  failing_since INTEGER,
  disabled_reason TEXT,
  created_by    TEXT    NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

-- One row per delivery attempt: the delivery log's response codes.
CREATE TABLE webhook_attempts (
  tenant_id     TEXT    NOT NULL,
  job_id        TEXT    NOT NULL,
  attempt       INTEGER NOT NULL,
  at            INTEGER NOT NULL,
  response_code INTEGER,                     -- NULL: no response (refused, timeout)
  error         TEXT    NOT NULL DEFAULT '',
  duration_ms   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, job_id, attempt)
);
