-- ACL policies (HCL text, parsed by the server) and the state token-tree
-- revocation needs: a revoked token is refused at once and deleted later,
-- once every token below it is revoked too.

CREATE TABLE policies (
    name       TEXT   PRIMARY KEY,
    policy     TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE tokens ADD COLUMN revoked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tokens ADD COLUMN last_renewal BIGINT;
CREATE INDEX tokens_revoked ON tokens (hash) WHERE revoked;
