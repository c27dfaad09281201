-- Migration 0009: the placeholder notes resource is retired (issue 7);
-- conversations carry what it exercised. Message attachments take over the
-- notes' sealed blobs. Plain SQLite, applied unchanged by the host and D1.

DROP TABLE notes;

-- API keys lose the notes scopes, which no route honours any more, so that
-- a key's listing shows only what it can do. Scopes are stored sorted and
-- space-separated, each once (identity.CreateAPIKey).
UPDATE api_keys SET scopes = trim(replace(replace(' ' || scopes || ' ', ' notes:read ', ' '), ' notes:write ', ' '))
  WHERE ' ' || scopes || ' ' LIKE '% notes:%';

-- A message's attachment: at most one per message (the key), written once
-- by the message's sender. The bytes are a sealed stream in the blob store
-- under t/<tenant>/messages/<message>/<upload> (kind "message.attachment",
-- id "<message>/<upload>"); upload_id names that one upload, so that two
-- racing uploads write different blobs and the INSERT that wins decides
-- which one the message has.
CREATE TABLE message_attachments (
  tenant_id  TEXT    NOT NULL,
  message_id TEXT    NOT NULL,
  upload_id  TEXT    NOT NULL,
  size       INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, message_id)
);
