-- Core domain tables shared by intake, mailbox and audit: Vorgänge with
-- their status timeline, team inboxes, Postfach threads, messages and
-- attachments. Feature migrations (0004 intake, 0005 auth, 0006 mailbox,
-- 0007 audit) extend them.

CREATE TABLE vorgaenge (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES kassen(id),
    person_id        TEXT NOT NULL REFERENCES persons(id),
    case_type        TEXT NOT NULL,
    status           TEXT NOT NULL,
    title            TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT,            -- e.g. the draft a submission came from
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX vorgaenge_person ON vorgaenge (tenant_id, person_id, created_at);

CREATE TABLE vorgang_status_history (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    vorgang_id  TEXT NOT NULL REFERENCES vorgaenge(id),
    from_status TEXT NOT NULL,        -- '' for the first entry
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    actor_id    TEXT NOT NULL DEFAULT '',
    at          BIGINT NOT NULL
);
CREATE INDEX vorgang_status_history_vorgang ON vorgang_status_history (tenant_id, vorgang_id, at);

-- Team inboxes of a Kasse, one per topic (Krankengeld, Hilfsmittel, ...).
CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES kassen(id),
    name        TEXT NOT NULL,
    topic       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, topic)
);

CREATE TABLE team_members (
    tenant_id   TEXT NOT NULL,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX team_members_account ON team_members (tenant_id, account_id);

-- A Postfach thread between an owner (insured person or provider
-- organisation) and a team of the Kasse.
CREATE TABLE threads (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES kassen(id),
    owner_kind       TEXT NOT NULL,     -- 'person' or 'provider'
    owner_id         TEXT NOT NULL,
    team_id          TEXT NOT NULL REFERENCES teams(id),
    subject          TEXT NOT NULL,
    vorgang_id       TEXT REFERENCES vorgaenge(id),
    state            TEXT NOT NULL,     -- 'open' or 'closed'
    assigned_to      TEXT,
    legal_hold       INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_message_at  BIGINT NOT NULL
);
CREATE INDEX threads_owner ON threads (tenant_id, owner_kind, owner_id, last_message_at);
CREATE INDEX threads_team ON threads (tenant_id, team_id, state, last_message_at);

-- Messages are immutable once sent.
CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    thread_id          TEXT NOT NULL REFERENCES threads(id),
    direction          TEXT NOT NULL,   -- 'in' (to the Kasse) or 'out' (to the owner)
    kind               TEXT NOT NULL,   -- 'message', 'document', 'receipt'
    sender_account_id  TEXT NOT NULL DEFAULT '',
    body               TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX messages_thread ON messages (tenant_id, thread_id, created_at);

CREATE TABLE message_reads (
    message_id  TEXT NOT NULL REFERENCES messages(id),
    reader_id   TEXT NOT NULL,
    read_at     BIGINT NOT NULL,
    PRIMARY KEY (message_id, reader_id)
);

-- Files: an upload's final object, attached to a message and/or a Vorgang.
CREATE TABLE attachments (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    message_id    TEXT REFERENCES messages(id),
    vorgang_id    TEXT REFERENCES vorgaenge(id),
    blob_key      TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (tenant_id, message_id);
CREATE INDEX attachments_vorgang ON attachments (tenant_id, vorgang_id);
