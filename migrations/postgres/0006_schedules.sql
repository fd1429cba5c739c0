-- Work due at a time: a static role's next password rotation, the next
-- key rotation. Like leases, a node claims a due row until a deadline
-- (`claimed_until`), so each run happens on one node, and a node that
-- dies mid-way leaves it to another once the deadline passes.
CREATE TABLE schedules (
    mount_uuid    TEXT    NOT NULL,
    name          TEXT    COLLATE "C" NOT NULL,
    due_at        BIGINT  NOT NULL,
    claimed_until BIGINT,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    PRIMARY KEY (mount_uuid, name)
);
CREATE INDEX schedules_due ON schedules (due_at);
