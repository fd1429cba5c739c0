-- ACL policies (HCL text, parsed by the server) and the state token-tree
-- revocation needs: a revoked token is refused at once and deleted later,
-- once every token below it is revoked too.

CREATE TABLE policies (
    name       TEXT    PRIMARY KEY,
    policy     TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

ALTER TABLE tokens ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_renewal INTEGER;
CREATE INDEX tokens_revoked ON tokens (hash) WHERE revoked = 1;
