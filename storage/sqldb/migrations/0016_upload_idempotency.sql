-- Idempotent upload creation (Idempotency-Key, draft-ietf-httpapi-
-- idempotency-key-header): a POST whose answer was lost is sent again with
-- the same key and gets the upload the first one created. Keys are scoped
-- to the owner (tenant and person), never global; '' means no key.
-- idempotency_digest is a SHA-256 over what the creation declared (length,
-- metadata, concatenation), so a key reused for another file is refused.
ALTER TABLE uploads ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN idempotency_digest TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX uploads_idempotency ON uploads (tenant_id, person_id, idempotency_key) WHERE idempotency_key <> '';
