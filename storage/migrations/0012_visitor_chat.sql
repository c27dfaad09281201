-- Migration 0012: the visitor's side of conversations (issue 8): the
-- visitor's read position, attachments' file names and sniffed types, a
-- visitor's announcement of a file, and satisfaction ratings (CSAT).
-- Plain SQLite, applied unchanged by the host and by D1.

-- How far the conversation's contact (the widget's visitor) has read: the
-- seq of the last message they saw. The team's own position stays read_seq.
ALTER TABLE conversations ADD COLUMN visitor_read_seq INTEGER NOT NULL DEFAULT 0;

-- The seq of the status event that last resolved the conversation (0: never
-- since this migration): the resolution a rating belongs to.
ALTER TABLE conversations ADD COLUMN resolved_seq INTEGER NOT NULL DEFAULT 0;

-- The latest rating of the conversation (a copy of its newest
-- conversation_csat row, written in the same batch), so that reading a
-- conversation, or a page of them, needs no second query.
ALTER TABLE conversations ADD COLUMN csat_rating INTEGER;
ALTER TABLE conversations ADD COLUMN csat_seq INTEGER;          -- the resolution it rates (seq of its status event)
ALTER TABLE conversations ADD COLUMN csat_at INTEGER;
ALTER TABLE conversations ADD COLUMN csat_comment_sealed BLOB;  -- kind "conversation.csat_comment"

-- A visitor's message may announce a file ({"name", "size"}, sealed, kind
-- "message.announced"): only such a message of the visitor's own takes an
-- upload from the widget.
ALTER TABLE messages ADD COLUMN announced_sealed BLOB;

-- An attachment's file name as its sender gave it (sealed, kind
-- "message.attachment_name"; NULL when none was given) and its type as
-- sniffed from its content against the allow-list (else
-- application/octet-stream): the type it is served with.
ALTER TABLE message_attachments ADD COLUMN name_sealed BLOB;
ALTER TABLE message_attachments ADD COLUMN content_type TEXT NOT NULL DEFAULT 'application/octet-stream';

-- Satisfaction ratings, one per resolution of a conversation: the key
-- refuses a second rating of the same resolution; a conversation reopened
-- and resolved again can be rated again.
CREATE TABLE conversation_csat (
  tenant_id       TEXT    NOT NULL,
  conversation_id TEXT    NOT NULL,
  resolution_seq  INTEGER NOT NULL,
  contact_id      TEXT    NOT NULL,
  rating          INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
  comment_sealed  BLOB,                 -- kind "conversation.csat_comment", id "<conversation>/<resolution_seq>"
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, resolution_seq)
);
