-- What nodes cache, counted: every statement that changes the mount
-- table, the policies, the audit devices or the keyring bumps its topic's
-- version in the same transaction (a trigger, so no write path can forget
-- it). Each node reads these few rows several times a second and reloads
-- only what changed, so a change made on one node reaches every node
-- within a second.
CREATE TABLE change_counters (
    topic   TEXT   PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO change_counters (topic, version)
VALUES ('mounts', 0), ('policies', 0), ('audit', 0), ('keyring', 0);

CREATE FUNCTION bump_change_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_counters SET version = version + 1 WHERE topic = TG_ARGV[0];
    RETURN NULL;
END
$$;

CREATE TRIGGER mounts_changed AFTER INSERT OR UPDATE OR DELETE ON mounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_counter('mounts');
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_counter('policies');
CREATE TRIGGER audit_changed AFTER INSERT OR UPDATE OR DELETE ON audit_devices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_counter('audit');
CREATE TRIGGER keyring_changed AFTER INSERT OR UPDATE OR DELETE ON keyring
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_counter('keyring');
