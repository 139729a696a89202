-- Postfach and notifier (issue 6). Portable: runs on SQLite and PostgreSQL.

-- Threads: the owner's archive, a case-folded copy of the subject for the
-- search (folded in Go, so both databases match the same way), and the
-- channel: 'postfach' is shown to the owner, 'paper' is a letter of the
-- Kasse for a person who wants post (kept for the Kasse, marked for print,
-- never shown in the Postfach).
ALTER TABLE threads ADD COLUMN subject_search TEXT NOT NULL DEFAULT '';
ALTER TABLE threads ADD COLUMN archived_at BIGINT;
ALTER TABLE threads ADD COLUMN channel TEXT NOT NULL DEFAULT 'postfach';
ALTER TABLE threads ADD COLUMN paper_status TEXT NOT NULL DEFAULT '';   -- 'to_print' for paper letters
UPDATE threads SET subject_search = LOWER(subject);
CREATE INDEX threads_paper ON threads (tenant_id, paper_status) WHERE channel = 'paper';

-- Retention walks messages by age.
CREATE INDEX messages_age ON messages (tenant_id, created_at);
CREATE INDEX message_reads_reader ON message_reads (reader_id, message_id);

-- Files uploaded for a message that is not sent yet. Sending moves the row
-- into attachments; rows left behind are removed with their blob.
CREATE TABLE mailbox_uploads (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    uploader_id   TEXT NOT NULL,     -- account that uploaded
    blob_key      TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX mailbox_uploads_uploader ON mailbox_uploads (tenant_id, uploader_id);
CREATE INDEX mailbox_uploads_age ON mailbox_uploads (created_at);

-- Blobs whose rows are gone: deleted from the blob store after the commit
-- that removed their rows, and retried from here if that fails.
CREATE TABLE mailbox_blob_trash (
    blob_key   TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    queued_at  BIGINT NOT NULL
);

-- Mail outbox: claims with a lease and a token, coalescing per recipient,
-- and the person a notification is for.
ALTER TABLE mail_outbox ADD COLUMN claim_token TEXT NOT NULL DEFAULT '';
ALTER TABLE mail_outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN reclaimed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN coalesce_key TEXT NOT NULL DEFAULT '';
ALTER TABLE mail_outbox ADD COLUMN coalesced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN person_id TEXT NOT NULL DEFAULT '';
ALTER TABLE mail_outbox ADD COLUMN failed_at BIGINT;
-- At most one waiting job per key: later notifications fold into it.
CREATE UNIQUE INDEX mail_outbox_coalesce ON mail_outbox (coalesce_key) WHERE status = 'pending' AND coalesce_key <> '';
CREATE INDEX mail_outbox_key ON mail_outbox (coalesce_key, created_at);
CREATE INDEX mail_outbox_lease ON mail_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX mail_outbox_failed ON mail_outbox (tenant_id, failed_at) WHERE status = 'failed';
