-- Migration 0010 (issue 7): the jobs view (GET /v1/jobs) lists a tenant's jobs
-- newest first by (created_at, id), optionally of one state ("dead" above
-- all). Without these, each page sorted all of the tenant's retained jobs.
CREATE INDEX jobs_list       ON jobs (tenant_id, created_at, id);
CREATE INDEX jobs_list_state ON jobs (tenant_id, state, created_at, id);
