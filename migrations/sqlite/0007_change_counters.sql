-- What nodes cache, counted (see the PostgreSQL migration): each change
-- to the mount table, the policies, the audit devices or the keyring bumps
-- its topic's version in the same transaction. One process owns a SQLite
-- database, so nothing polls these here; they keep both schemas alike and
-- the storage conformance suite tests them on both.
CREATE TABLE change_counters (
    topic   TEXT    PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO change_counters (topic, version)
VALUES ('mounts', 0), ('policies', 0), ('audit', 0), ('keyring', 0);

CREATE TRIGGER mounts_insert_counted AFTER INSERT ON mounts
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'mounts';
END;
CREATE TRIGGER mounts_update_counted AFTER UPDATE ON mounts
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'mounts';
END;
CREATE TRIGGER mounts_delete_counted AFTER DELETE ON mounts
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'mounts';
END;
CREATE TRIGGER policies_insert_counted AFTER INSERT ON policies
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'policies';
END;
CREATE TRIGGER policies_update_counted AFTER UPDATE ON policies
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'policies';
END;
CREATE TRIGGER policies_delete_counted AFTER DELETE ON policies
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'policies';
END;
CREATE TRIGGER audit_devices_insert_counted AFTER INSERT ON audit_devices
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'audit';
END;
CREATE TRIGGER audit_devices_update_counted AFTER UPDATE ON audit_devices
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'audit';
END;
CREATE TRIGGER audit_devices_delete_counted AFTER DELETE ON audit_devices
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'audit';
END;
CREATE TRIGGER keyring_insert_counted AFTER INSERT ON keyring
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'keyring';
END;
CREATE TRIGGER keyring_update_counted AFTER UPDATE ON keyring
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'keyring';
END;
CREATE TRIGGER keyring_delete_counted AFTER DELETE ON keyring
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = 'keyring';
END;
