-- secretd schema, SQLite dialect. Timestamps are Unix nanoseconds (INTEGER).
-- Sealed columns hold AES-256-GCM blobs (see server/src/barrier); nothing
-- here is plaintext except names, paths and bookkeeping.

-- One row once the server is initialised: how it is sealed, and the root
-- key sealed by the unseal key.
CREATE TABLE barrier (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    seal_type        TEXT    NOT NULL,
    secret_shares    INTEGER NOT NULL,
    secret_threshold INTEGER NOT NULL,
    sealed_root_key  BLOB    NOT NULL,
    sealed_token_key BLOB    NOT NULL,
    cluster_id       TEXT    NOT NULL,
    cluster_name     TEXT    NOT NULL,
    initialized_at   INTEGER NOT NULL
);

-- Key-encryption keys, each sealed by the root key. The highest term is
-- the active one.
CREATE TABLE keyring (
    term         INTEGER PRIMARY KEY,
    sealed_key   BLOB    NOT NULL,
    installed_at INTEGER NOT NULL
);

-- One data key per stored value, wrapped by the KEK of `term`. Deleting a
-- row here is crypto-shredding: the value it protected is gone everywhere.
CREATE TABLE data_keys (
    id      BLOB    PRIMARY KEY,
    term    INTEGER NOT NULL,
    wrapped BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX data_keys_term ON data_keys (term);

CREATE TABLE mounts (
    uuid        TEXT    PRIMARY KEY,
    path        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    mount_type  TEXT    NOT NULL,
    description TEXT    NOT NULL,
    accessor    TEXT    NOT NULL UNIQUE,
    options     TEXT    NOT NULL,
    config      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Tokens are stored only as keyed hashes (HMAC-SHA256 under a barrier key).
CREATE TABLE tokens (
    hash             BLOB    PRIMARY KEY,
    accessor         TEXT    NOT NULL UNIQUE,
    parent           BLOB,
    policies         TEXT    NOT NULL,
    meta             TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    num_uses         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expire_at        INTEGER,
    creation_ttl     INTEGER NOT NULL,
    explicit_max_ttl INTEGER NOT NULL,
    period           INTEGER NOT NULL,
    renewable        INTEGER NOT NULL,
    orphan           INTEGER NOT NULL,
    token_type       TEXT    NOT NULL,
    path             TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_expire_at ON tokens (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX tokens_parent ON tokens (parent) WHERE parent IS NOT NULL;

CREATE TABLE kv_config (
    mount_uuid           TEXT    PRIMARY KEY,
    max_versions         INTEGER NOT NULL,
    cas_required         INTEGER NOT NULL,
    delete_version_after INTEGER NOT NULL
);

CREATE TABLE kv_metadata (
    mount_uuid           TEXT    NOT NULL,
    path                 TEXT    NOT NULL,
    current_version      INTEGER NOT NULL,
    oldest_version       INTEGER NOT NULL,
    max_versions         INTEGER NOT NULL,
    cas_required         INTEGER NOT NULL,
    delete_version_after INTEGER NOT NULL,
    custom_dek           BLOB,
    custom_metadata      BLOB,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (mount_uuid, path)
) WITHOUT ROWID;

CREATE TABLE kv_versions (
    mount_uuid    TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    deletion_time INTEGER,
    destroyed     INTEGER NOT NULL,
    dek           BLOB,
    ciphertext    BLOB,
    PRIMARY KEY (mount_uuid, path, version)
) WITHOUT ROWID;
