-- Auth methods (kubernetes, ldap) and, later, other backends keep their
-- own records here: configs, roles, groups, users. Each value is JSON
-- sealed under its own data key in `data_keys`; only the mount and the
-- record's path are in clear.
CREATE TABLE mount_entries (
    mount_uuid TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    dek        BLOB    NOT NULL,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (mount_uuid, path)
) WITHOUT ROWID;

-- A token issued by a login remembers its auth mount (disabling the mount
-- revokes it; renewal asks the method again) and, sealed, what the method
-- needs to renew it. That value carries its own wrapped data key, so it
-- dies with the row.
ALTER TABLE tokens ADD COLUMN auth_mount TEXT;
ALTER TABLE tokens ADD COLUMN internal BLOB;
CREATE INDEX tokens_auth_mount ON tokens (auth_mount) WHERE auth_mount IS NOT NULL;
