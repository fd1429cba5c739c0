-- Audit devices. Each has its own HMAC key (the salt of the hashes in its
-- log), sealed like any stored value under a data key in `data_keys`.

CREATE TABLE audit_devices (
    path        TEXT    PRIMARY KEY,
    uuid        TEXT    NOT NULL UNIQUE,
    device_type TEXT    NOT NULL,
    description TEXT    NOT NULL,
    options     TEXT    NOT NULL,
    local       INTEGER NOT NULL,
    hmac_dek    BLOB    NOT NULL,
    hmac_key    BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
