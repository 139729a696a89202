-- Einmal-PIN intake (issue 4, PIN side): what a letter asked for, counters
-- of failed logins and of attempts per client, server-side PIN sessions and
-- the drafts a person fills in before submitting. Portable: runs on SQLite
-- and PostgreSQL. No column holds a PIN, a session token or a client address:
-- only keyed or plain hashes of them.

ALTER TABLE einmal_pins ADD COLUMN case_type TEXT NOT NULL DEFAULT 'sonstiges';
ALTER TABLE einmal_pins ADD COLUMN issued_by TEXT NOT NULL DEFAULT '';

-- Failed PIN logins per typed KVNR, counted for every KVNR whether a person
-- has it or not (subject_hash is a keyed hash of tenant and KVNR), so the
-- answers cannot tell which KVNRs exist.
CREATE TABLE pin_login_failures (
    tenant_id     TEXT NOT NULL,
    subject_hash  TEXT NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked_at     BIGINT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subject_hash)
);

-- Fixed-window counters per client (keyed hash of the address), shared by
-- every replica through the database.
CREATE TABLE intake_rate_limits (
    bucket        TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hits          INTEGER NOT NULL,
    PRIMARY KEY (bucket, key_hash)
);

-- Sessions opened by an Einmal-PIN login; id_hash is the SHA-256 of the
-- cookie value.
CREATE TABLE pin_sessions (
    id_hash       TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES kassen(id),
    person_id     TEXT NOT NULL REFERENCES persons(id),
    pin_id        TEXT NOT NULL REFERENCES einmal_pins(id),
    kind          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    ended_at      BIGINT,
    end_reason    TEXT NOT NULL DEFAULT '',
    vorgang_id    TEXT REFERENCES vorgaenge(id)
);
CREATE INDEX pin_sessions_person ON pin_sessions (tenant_id, person_id, created_at);

-- The short form of a submission, saved on every change. One open draft per
-- person; a submitted draft keeps the Vorgang it became.
CREATE TABLE intake_drafts (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES kassen(id),
    person_id     TEXT NOT NULL REFERENCES persons(id),
    case_type     TEXT NOT NULL DEFAULT '',
    subject       TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    submitted_at  BIGINT,
    vorgang_id    TEXT REFERENCES vorgaenge(id)
);
CREATE UNIQUE INDEX intake_drafts_open ON intake_drafts (tenant_id, person_id) WHERE submitted_at IS NULL;
