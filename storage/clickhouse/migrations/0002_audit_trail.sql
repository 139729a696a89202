-- The auditors' table, sorted for their most selective filter: one
-- subject's history (a Vorgang, a person, a message). Measured over 10
-- million events of one Kasse on 18.16: a Vorgang's 50 events took 3.5 to
-- 12 s with 0001's key (tenant, day, type, subject …), which makes every
-- subject lookup a scan of the whole tenant, and 16 to 50 ms with this key.
-- Time filters are served by the month partitions: a day's export reads
-- one month of the tenant (≈0.3 s for a day of 27,000 events either way).
--
-- ReplacingMergeTree collapses exact copies of an event shipped twice when
-- parts merge (a copy has the same key); reads deduplicate before that.
CREATE TABLE IF NOT EXISTS {db}.audit_trail (
    tenant_id    String,
    ts           DateTime('UTC'),
    ts_unix_us   Int64,
    id           String,
    seq          Int64,
    type         String,
    actor_id     String,
    actor_role   String,
    subject_type String,
    subject_id   String,
    outcome      String,
    client_hash  String,
    request_id   String,
    details      String,
    prev_hash    String,
    hash         String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, subject_type, subject_id, ts_unix_us, id);

-- Events of the 0001 table move over; a rerun after a crash copies them
-- again, which reads and merges absorb like any event shipped twice.
-- if-exists: {db}.audit_events
INSERT INTO {db}.audit_trail (tenant_id, ts, ts_unix_us, id, seq, type, actor_id, actor_role, subject_type, subject_id,
    outcome, client_hash, request_id, details, prev_hash, hash)
SELECT tenant_id, ts, ts_unix_us, id, seq, type, actor_id, actor_role, subject_type, subject_id,
    outcome, client_hash, request_id, details, prev_hash, hash
FROM {db}.audit_events;

DROP TABLE IF EXISTS {db}.audit_events;
