-- secretd schema, PostgreSQL dialect. Timestamps are Unix nanoseconds
-- (BIGINT). Sealed columns hold AES-256-GCM blobs (see server/src/barrier);
-- nothing here is plaintext except names, paths and bookkeeping. Paths use
-- the "C" collation so that ordering and prefix ranges are bytewise, as in
-- SQLite.

CREATE TABLE barrier (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    seal_type        TEXT    NOT NULL,
    secret_shares    BIGINT  NOT NULL,
    secret_threshold BIGINT  NOT NULL,
    sealed_root_key  BYTEA   NOT NULL,
    sealed_token_key BYTEA   NOT NULL,
    cluster_id       TEXT    NOT NULL,
    cluster_name     TEXT    NOT NULL,
    initialized_at   BIGINT  NOT NULL
);

CREATE TABLE keyring (
    term         BIGINT PRIMARY KEY,
    sealed_key   BYTEA  NOT NULL,
    installed_at BIGINT NOT NULL
);

CREATE TABLE data_keys (
    id      BYTEA  PRIMARY KEY,
    term    BIGINT NOT NULL,
    wrapped BYTEA  NOT NULL
);
CREATE INDEX data_keys_term ON data_keys (term);

CREATE TABLE mounts (
    uuid        TEXT   PRIMARY KEY,
    path        TEXT   COLLATE "C" NOT NULL UNIQUE,
    kind        TEXT   NOT NULL,
    mount_type  TEXT   NOT NULL,
    description TEXT   NOT NULL,
    accessor    TEXT   NOT NULL UNIQUE,
    options     TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash             BYTEA   PRIMARY KEY,
    accessor         TEXT    NOT NULL UNIQUE,
    parent           BYTEA,
    policies         TEXT    NOT NULL,
    meta             TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    num_uses         BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    expire_at        BIGINT,
    creation_ttl     BIGINT  NOT NULL,
    explicit_max_ttl BIGINT  NOT NULL,
    period           BIGINT  NOT NULL,
    renewable        BOOLEAN NOT NULL,
    orphan           BOOLEAN NOT NULL,
    token_type       TEXT    NOT NULL,
    path             TEXT    NOT NULL
);
CREATE INDEX tokens_expire_at ON tokens (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX tokens_parent ON tokens (parent) WHERE parent IS NOT NULL;

CREATE TABLE kv_config (
    mount_uuid           TEXT    PRIMARY KEY,
    max_versions         BIGINT  NOT NULL,
    cas_required         BOOLEAN NOT NULL,
    delete_version_after BIGINT  NOT NULL
);

CREATE TABLE kv_metadata (
    mount_uuid           TEXT    NOT NULL,
    path                 TEXT    COLLATE "C" NOT NULL,
    current_version      BIGINT  NOT NULL,
    oldest_version       BIGINT  NOT NULL,
    max_versions         BIGINT  NOT NULL,
    cas_required         BOOLEAN NOT NULL,
    delete_version_after BIGINT  NOT NULL,
    custom_dek           BYTEA,
    custom_metadata      BYTEA,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    PRIMARY KEY (mount_uuid, path)
);

CREATE TABLE kv_versions (
    mount_uuid    TEXT    NOT NULL,
    path          TEXT    COLLATE "C" NOT NULL,
    version       BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    deletion_time BIGINT,
    destroyed     BOOLEAN NOT NULL,
    dek           BYTEA,
    ciphertext    BYTEA,
    PRIMARY KEY (mount_uuid, path, version)
);
