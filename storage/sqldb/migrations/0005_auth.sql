-- Accounts, login and second factor (issue 5). Portable: runs on SQLite and
-- PostgreSQL. Secrets are never stored in clear: session tokens, links and
-- codes as keyed or plain SHA-256 hashes, passwords and security answers as
-- Argon2id, TOTP secrets sealed with AES-GCM.

-- Account life cycle and login state. Times are microseconds, 0 = never.
ALTER TABLE accounts ADD COLUMN mobile TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN mobile_pending TEXT NOT NULL DEFAULT '';   -- new number while a change awaits its codes
ALTER TABLE accounts ADD COLUMN org_id TEXT NOT NULL DEFAULT '';           -- provider organisation
ALTER TABLE accounts ADD COLUMN salutation TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';        -- JSON of further profile fields
ALTER TABLE accounts ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;  -- wrong passwords in a row
ALTER TABLE accounts ADD COLUMN lock_reason TEXT NOT NULL DEFAULT '';      -- 'password' or 'suspicion'
ALTER TABLE accounts ADD COLUMN locked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN password_changed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN email_confirmed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN mobile_confirmed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN activated_at BIGINT NOT NULL DEFAULT 0;    -- first login with Freischaltcode done
ALTER TABLE accounts ADD COLUMN security_question TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN security_answer_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN consent_version TEXT NOT NULL DEFAULT '';  -- current consent, '' = none
ALTER TABLE accounts ADD COLUMN consent_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN invited_by TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN ended_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

CREATE INDEX accounts_email ON accounts (tenant_id, email);
CREATE INDEX accounts_org ON accounts (tenant_id, org_id);
-- "Sie sind bereits registriert": one live account per insured person.
CREATE UNIQUE INDEX accounts_person_live ON accounts (tenant_id, person_id) WHERE person_id IS NOT NULL AND status <> 'ended';

-- Sessions live here so every replica can serve them. The cookie carries a
-- random 32-byte token; only its SHA-256 is stored. stage <> '' is a login
-- still waiting for a step (second factor, security question, consent).
CREATE TABLE auth_sessions (
    id            TEXT PRIMARY KEY,           -- public id, used in audit events and session lists
    token_hash    TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL,
    account_id    TEXT NOT NULL DEFAULT '',   -- '' for an Einmal-PIN session
    role          TEXT NOT NULL,
    person_id     TEXT NOT NULL DEFAULT '',
    org_id        TEXT NOT NULL DEFAULT '',
    stage         TEXT NOT NULL DEFAULT '',
    data          TEXT NOT NULL DEFAULT '{}', -- small JSON state of an unfinished login
    client_hash   TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,            -- absolute end
    step_up_at    BIGINT NOT NULL DEFAULT 0   -- last fresh security code in this session
);
CREATE INDEX auth_sessions_account ON auth_sessions (tenant_id, account_id);
CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at);

-- Last passwords of an account, for "none of the last N again".
CREATE TABLE auth_password_history (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX auth_password_history_account ON auth_password_history (tenant_id, account_id, created_at);

-- One-time codes sent by SMS (mTAN): keyed hash only, single use, few tries.
CREATE TABLE auth_codes (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    purpose     TEXT NOT NULL,   -- login, stepup, mobile_confirm, mobile_old, mobile_new
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_codes_account ON auth_codes (tenant_id, account_id, purpose);

-- Links and letter codes: e-mail confirmation, Freischaltcode, password
-- reset, provider invitation, device activation code. Keyed hash only.
CREATE TABLE auth_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    ref_id      TEXT NOT NULL DEFAULT '',   -- e.g. the device an activation code belongs to
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX auth_tokens_hash ON auth_tokens (purpose, token_hash);
CREATE INDEX auth_tokens_account ON auth_tokens (tenant_id, account_id, purpose);

-- Authenticator devices (TOTP, RFC 6238). last_step blocks a code's reuse.
CREATE TABLE auth_devices (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,              -- requested ("beantragt"), active ("Erfolgreich abgeschlossen"), removed
    secret_sealed TEXT NOT NULL DEFAULT '',
    pin_hash      TEXT NOT NULL DEFAULT '',   -- app PIN of provider devices (seed 001)
    last_step     BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT NOT NULL DEFAULT 0,
    last_used_at  BIGINT NOT NULL DEFAULT 0,
    removed_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_devices_account ON auth_devices (tenant_id, account_id);

-- Consent to data processing (seed 001, Art. 6(1)(a) DSGVO), with the text
-- version the person saw.
CREATE TABLE auth_consents (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    text_version  TEXT NOT NULL,
    text_hash     TEXT NOT NULL,
    given_at      BIGINT NOT NULL,
    revoked_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_consents_account ON auth_consents (tenant_id, account_id, given_at);

-- Fixed-window counters for rate limits; bucket is a keyed hash, never an
-- address or a name.
CREATE TABLE auth_rate_limits (
    bucket        TEXT PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    hits          INTEGER NOT NULL
);
