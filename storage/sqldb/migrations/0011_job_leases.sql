-- Periodic jobs (retention, upload maintenance, cleanups) run on one
-- replica at a time: the replica holding a job's lease runs it and renews
-- the lease each period; when the holder dies the lease expires and another
-- replica takes the job over. Portable: runs on SQLite and PostgreSQL.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
