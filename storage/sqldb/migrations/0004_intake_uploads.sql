-- Resumable uploads (tus 1.0.0) of insured persons. A row is the whole
-- state of one upload, so the next PATCH may reach any replica; the lease
-- (lock_owner, lock_until) keeps two requests from writing one upload.

CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,            -- 128 random bits, hex
    tenant_id       TEXT NOT NULL REFERENCES kassen(id),
    person_id       TEXT NOT NULL REFERENCES persons(id),
    kind            TEXT NOT NULL,               -- single, partial, final (tus concatenation)
    status          TEXT NOT NULL,               -- intake.UploadStatus
    length          BIGINT NOT NULL,             -- -1 while deferred
    upload_offset   BIGINT NOT NULL DEFAULT 0,   -- bytes durably stored
    metadata        TEXT NOT NULL DEFAULT '',    -- Upload-Metadata as sent
    filename        TEXT NOT NULL DEFAULT '',
    declared_type   TEXT NOT NULL DEFAULT '',
    detected_type   TEXT NOT NULL DEFAULT '',
    concat          TEXT NOT NULL DEFAULT '[]',  -- JSON ids of the partials of a final upload
    blob_key        TEXT NOT NULL,
    multipart_id    TEXT NOT NULL DEFAULT '',
    parts           TEXT NOT NULL DEFAULT '[]',  -- JSON [{n, etag, size}]
    staging         TEXT NOT NULL DEFAULT '[]',  -- JSON [{key, size}]
    staging_seq     BIGINT NOT NULL DEFAULT 0,
    hash_state      TEXT NOT NULL DEFAULT '',    -- base64 SHA-256 state over upload_offset bytes
    sha256          TEXT NOT NULL DEFAULT '',
    scan_status     TEXT NOT NULL DEFAULT '',
    scan_signature  TEXT NOT NULL DEFAULT '',
    lock_owner      TEXT,
    lock_until      BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT NOT NULL DEFAULT 0,
    finalized_at    BIGINT NOT NULL DEFAULT 0,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX uploads_person ON uploads (tenant_id, person_id, created_at);
CREATE INDEX uploads_expiry ON uploads (expires_at) WHERE status <> 'final';
CREATE INDEX uploads_stalled ON uploads (updated_at) WHERE status IN ('completing', 'quarantined');
