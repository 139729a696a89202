-- Foundation schema, portable: the same file runs on SQLite and PostgreSQL.
-- Times are BIGINT microseconds since the epoch (UTC), so the shared queries
-- in storage/sqldb stay identical. Backend-only steps live in the backend.

CREATE TABLE kassen (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    portal_url  TEXT NOT NULL,
    settings    TEXT NOT NULL,          -- JSON of kasse.Settings
    created_at  BIGINT NOT NULL
);

-- An insured person as the Kasse knows them, with or without a portal account.
CREATE TABLE persons (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES kassen(id),
    kvnr             TEXT NOT NULL,
    given_name       TEXT NOT NULL,
    family_name      TEXT NOT NULL,
    street           TEXT NOT NULL DEFAULT '',
    postal_code      TEXT NOT NULL DEFAULT '',
    city             TEXT NOT NULL DEFAULT '',
    birth_date       TEXT NOT NULL DEFAULT '',   -- YYYY-MM-DD
    egk_valid_until  BIGINT NOT NULL DEFAULT 0,  -- 0: no card data
    email            TEXT NOT NULL DEFAULT '',
    delivery         TEXT NOT NULL DEFAULT 'post', -- 'post' or 'online'
    pin_failures     INTEGER NOT NULL DEFAULT 0,
    pin_locked_at    BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, kvnr)
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES kassen(id),
    role           TEXT NOT NULL,
    username       TEXT NOT NULL,
    email          TEXT NOT NULL DEFAULT '',
    display_name   TEXT NOT NULL DEFAULT '',
    person_id      TEXT REFERENCES persons(id),
    password_hash  TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);

-- Einmal-PINs: only a keyed hash is stored, never the PIN.
CREATE TABLE einmal_pins (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES kassen(id),
    person_id    TEXT NOT NULL REFERENCES persons(id),
    pin_hash     TEXT NOT NULL UNIQUE,
    request_text TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX einmal_pins_person ON einmal_pins (tenant_id, person_id);

-- Audit outbox: written in the transaction of the action it records, shipped
-- to the event store afterwards. seq/prev_hash/hash form the tenant's chain.
CREATE TABLE audit_outbox (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    ts            BIGINT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    type          TEXT NOT NULL,
    subject_type  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    client_hash   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    details       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    shipped_at    BIGINT,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_outbox_pending ON audit_outbox (ts) WHERE shipped_at IS NULL;

CREATE TABLE audit_chain_heads (
    tenant_id  TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL
);

-- Mail outbox: notification jobs, sent by the notifier after commit.
CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    template         TEXT NOT NULL,
    data             TEXT NOT NULL,    -- JSON, never message content
    message_id       TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,    -- pending, sent, failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT,
    last_error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending';
