-- Migration 0004: a keyed seal on every audit event.
-- seal = HMAC-SHA256 under a key derived from the master key (purpose
-- "audit-seal") of the tenant id and the event's chain hash. Someone who can
-- write the database but does not hold the master key can no longer edit an
-- event and recompute the chain after it: the recomputed events lack valid
-- seals. NULL only for events written before this migration.
ALTER TABLE audit_events ADD COLUMN seal BLOB;
