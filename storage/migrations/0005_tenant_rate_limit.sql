-- Migration 0005: an organization's request rate, set by its owners and
-- admins (PATCH /v1/settings rate_limit_per_minute). Every authenticated
-- request counts against it; 6000 a minute is what every tenant had before.
-- The handlers keep it a multiple of the limiter's "tenant" unit (600) from
-- 600 to 60000.
ALTER TABLE tenants ADD COLUMN rate_limit_per_minute INTEGER NOT NULL DEFAULT 6000;
