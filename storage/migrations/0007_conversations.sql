-- Migration 0007: contacts, conversations, messages, their event log, the
-- tenant's inbox feed, idempotency keys and canned responses (issue 7).
-- Plain SQLite, applied unchanged by the host and by D1: no triggers, no
-- foreign keys (tenant deletion removes these rows explicitly).
--
-- Sealed columns hold AES-256-GCM ciphertexts under the tenant's data key
-- with associated data (tenant, kind, id); docs/decisions.md names the
-- kinds. Nothing a visitor wrote and no PII is stored in clear.

-- A visitor or customer. name, email, phone and custom attributes are one
-- sealed JSON document (kind "contact.pii"). email_index is the keyed blind
-- index of the normalized email (HMAC under a per-tenant key held by the
-- home's key custodian), so a contact is found by email without the email
-- in clear; NULL when the contact has no email (NULLs never collide).
CREATE TABLE contacts (
  tenant_id   TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  pii_sealed  BLOB    NOT NULL,
  email_index BLOB,
  version     INTEGER NOT NULL DEFAULT 1,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX contacts_email ON contacts (tenant_id, email_index);
CREATE INDEX contacts_created ON contacts (tenant_id, created_at, id);

-- A conversation with one contact. last_seq is the seq of its newest event:
-- every change updates the row and inserts its events (seq last_seq+1, ...)
-- in one batch, and the (tenant_id, conversation_id, seq) key of
-- conversation_events makes a batch that raced another one fail whole.
-- status 'merged' is final: merged_into names the target.
CREATE TABLE conversations (
  tenant_id        TEXT    NOT NULL,
  id               TEXT    NOT NULL,
  contact_id       TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN ('open', 'pending', 'snoozed', 'resolved', 'merged')),
  snoozed_until    INTEGER,
  assignee_id      TEXT,
  labels           TEXT    NOT NULL DEFAULT '[]',  -- JSON array of short strings, sorted
  priority         TEXT    NOT NULL DEFAULT 'none' CHECK (priority IN ('none', 'low', 'medium', 'high', 'urgent')),
  subject_sealed   BLOB,                           -- kind "conversation.subject"
  merged_into      TEXT,
  last_seq         INTEGER NOT NULL,
  last_activity_at INTEGER NOT NULL,
  unread           INTEGER NOT NULL DEFAULT 0,     -- visitor messages since the team last read
  read_seq         INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX conversations_activity ON conversations (tenant_id, last_activity_at, id);
CREATE INDEX conversations_status   ON conversations (tenant_id, status, last_activity_at, id);
CREATE INDEX conversations_assignee ON conversations (tenant_id, assignee_id, last_activity_at, id);
CREATE INDEX conversations_contact  ON conversations (tenant_id, contact_id, last_activity_at, id);
CREATE INDEX conversations_snoozed  ON conversations (status, snoozed_until);

-- A message. seq is its event's seq in the conversation it was written to.
-- The text is sealed (kind "message.text", id = message id).
CREATE TABLE messages (
  tenant_id       TEXT    NOT NULL,
  id              TEXT    NOT NULL,
  conversation_id TEXT    NOT NULL,
  seq             INTEGER NOT NULL,
  author_type     TEXT    NOT NULL CHECK (author_type IN ('visitor', 'person', 'agent', 'system')),
  author_id       TEXT    NOT NULL,
  private         INTEGER NOT NULL DEFAULT 0,
  text_sealed     BLOB    NOT NULL,
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX messages_seq ON messages (tenant_id, conversation_id, seq);

-- The per-conversation event log. Events hold no content: a message event
-- refers to its message (ref); data holds only non-content facts (old and
-- new status, label names). private marks events a visitor must never see.
CREATE TABLE conversation_events (
  tenant_id       TEXT    NOT NULL,
  conversation_id TEXT    NOT NULL,
  seq             INTEGER NOT NULL,
  type            TEXT    NOT NULL,
  ref             TEXT    NOT NULL DEFAULT '',
  actor           TEXT    NOT NULL DEFAULT '',   -- "user:u_…", "api_key:key_…", "contact:ct_…", "system"
  private         INTEGER NOT NULL DEFAULT 0,
  data            TEXT    NOT NULL DEFAULT '{}',
  at              INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, seq)
);

-- The tenant's inbox feed: one row per conversation event that the inbox
-- shows (everything but typing), with its own per-tenant seq, taken from
-- inbox_heads in the same batch.
CREATE TABLE inbox_heads (
  tenant_id TEXT    PRIMARY KEY,
  last_seq  INTEGER NOT NULL
);
CREATE TABLE inbox_events (
  tenant_id        TEXT    NOT NULL,
  seq              INTEGER NOT NULL,
  conversation_id  TEXT    NOT NULL,
  conversation_seq INTEGER NOT NULL,
  type             TEXT    NOT NULL,
  at               INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, seq)
);

-- Idempotency keys of sends (and conversation creation): written in the
-- same batch as the message, so a retry finds the first result or nothing.
-- principal is who sent it ("user:…", "api_key:…"); request_hash is the
-- SHA-256 of the route and body, to refuse a key reused for another request.
CREATE TABLE idempotency_keys (
  tenant_id       TEXT    NOT NULL,
  principal       TEXT    NOT NULL,
  key             TEXT    NOT NULL,
  request_hash    BLOB    NOT NULL,
  conversation_id TEXT    NOT NULL,
  message_id      TEXT    NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Merges, one per source conversation (a second merge of the same source
-- fails on the key).
CREATE TABLE conversation_merges (
  tenant_id TEXT    NOT NULL,
  source_id TEXT    NOT NULL,
  target_id TEXT    NOT NULL,
  merged_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, source_id)
);

-- Canned responses: a short code and a sealed text (kind "canned.text").
CREATE TABLE canned_responses (
  tenant_id   TEXT    NOT NULL,
  id          TEXT    NOT NULL,
  code        TEXT    NOT NULL,
  text_sealed BLOB    NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX canned_responses_code ON canned_responses (tenant_id, code);
