-- Audit events for auditors (audit.EventStore). {db} is replaced by the
-- database name. Every statement must be idempotent: ClickHouse has no
-- transactions, so a migration that fails halfway is simply run again.
--
-- Column types are chosen for ClickHouse 18.16:
--   * ts is DateTime('UTC') (seconds; 18.16 has no DateTime64). The explicit
--     zone makes toDate/toYYYYMM use UTC whatever the server's timezone is.
--     ts_unix_us holds the exact time in microseconds: ordering, cursors and
--     round trips use it, ts only serves partitioning and the primary key.
--   * type, actor_role, subject_type and outcome stay plain String: in 18.16
--     LowCardinality is experimental and needs a profile setting on every
--     server, and in a sorted key a repetitive String compresses nearly as
--     well anyway.
-- ReplacingMergeTree collapses events shipped twice (identical rows, hence
-- the same sorting key) when parts merge; until then queries deduplicate by
-- id themselves (see events.go).
CREATE TABLE IF NOT EXISTS {db}.audit_events (
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
ORDER BY (tenant_id, toDate(ts), type, subject_type, subject_id, ts_unix_us, id);
