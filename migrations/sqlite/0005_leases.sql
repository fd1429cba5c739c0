-- Leases: every dynamic secret handed out, until it is revoked. Nothing of
-- them lives in memory: the expiry worker claims the rows whose `due_at`
-- has come, in batches, and a claim moves `due_at` to the claim's
-- deadline, so a node that dies mid-way leaves work another node takes
-- over when the deadline passes.
CREATE TABLE leases (
    id           TEXT    PRIMARY KEY,
    mount_uuid   TEXT    NOT NULL,
    -- The backend's role, for quotas and counts ('' when none).
    role         TEXT    NOT NULL,
    -- The token whose request created the lease: revoked with it.
    token_hash   BLOB,
    issued_at    INTEGER NOT NULL,
    expire_at    INTEGER NOT NULL,
    last_renewal INTEGER,
    renewable    INTEGER NOT NULL,
    -- What the backend needs to renew and revoke (a database user name),
    -- sealed under the data key `dek`.
    dek          BLOB    NOT NULL,
    secret       BLOB    NOT NULL,
    -- When the worker acts next: the expiry, a retry after a failure, or
    -- the deadline of a claim in progress.
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    irrevocable  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
) WITHOUT ROWID;
CREATE INDEX leases_due ON leases (due_at) WHERE NOT irrevocable;
CREATE INDEX leases_token ON leases (token_hash) WHERE token_hash IS NOT NULL;
CREATE INDEX leases_role ON leases (mount_uuid, role);
