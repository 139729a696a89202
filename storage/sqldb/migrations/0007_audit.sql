-- Audit: shipping queue, retention anchors, Vorgang list indexes.

-- Events waiting to be shipped to the event store. The outbox row itself
-- stays (for re-shipping after an event store loss) until retention purges
-- it; shipping only deletes the queue entry. A delete from this narrow
-- table costs a fraction of updating the wide outbox row, whose every
-- index would get a new entry (the old partial index on shipped_at made
-- each such update non-HOT). audit_outbox.shipped_at is no longer written.
CREATE TABLE audit_ship_queue (
    id  TEXT PRIMARY KEY,
    ts  BIGINT NOT NULL
);
CREATE INDEX audit_ship_queue_ts ON audit_ship_queue (ts, id);
INSERT INTO audit_ship_queue (id, ts) SELECT id, ts FROM audit_outbox WHERE shipped_at IS NULL;

-- The outbox is now purged by time (shipped rows older than a few days).
DROP INDEX audit_outbox_pending;
CREATE INDEX audit_outbox_ts ON audit_outbox (ts);

-- Where retention cut a tenant's chain: seq and hash of the last event it
-- deleted. Verification starts after it; the head stays in audit_chain_heads.
CREATE TABLE audit_chain_anchors (
    tenant_id   TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Caseworkers list a tenant's Vorgänge newest first, by status and/or type.
CREATE INDEX vorgaenge_tenant_created ON vorgaenge (tenant_id, created_at, id);
CREATE INDEX vorgaenge_tenant_status ON vorgaenge (tenant_id, status, created_at, id);
CREATE INDEX vorgaenge_tenant_type ON vorgaenge (tenant_id, case_type, created_at, id);
