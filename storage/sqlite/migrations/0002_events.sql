-- Audit events shipped from the outbox (audit.EventStore). Append is
-- idempotent: the primary key on id lets INSERT ... ON CONFLICT(id) DO NOTHING
-- drop events shipped twice. ts is UTC unix microseconds, the precision the
-- hash chain covers. Every index ends in the columns queries order by, so
-- SQLite reads pages in (ts, id) or seq order without a temporary sort.
CREATE TABLE IF NOT EXISTS audit_events (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    actor_id     TEXT    NOT NULL,
    actor_role   TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    subject_type TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    client_hash  TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    details      TEXT    NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_events_tenant_ts
    ON audit_events (tenant_id, ts, id);
CREATE INDEX IF NOT EXISTS audit_events_tenant_subject_ts
    ON audit_events (tenant_id, subject_type, subject_id, ts, id);
CREATE INDEX IF NOT EXISTS audit_events_tenant_type_ts
    ON audit_events (tenant_id, type, ts, id);
CREATE INDEX IF NOT EXISTS audit_events_tenant_seq
    ON audit_events (tenant_id, seq, id);
