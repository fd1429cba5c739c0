-- The nodes serving this database, for sys/ha-status. Each node writes
-- its own row every few seconds (last_seen, on its own clock) and deletes
-- it when it shuts down; a row nobody has written for a while is a node
-- that died, and the others delete it. Nothing here is secret.
CREATE TABLE nodes (
    id          TEXT    PRIMARY KEY,
    hostname    TEXT    NOT NULL,
    api_address TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    sealed      BOOLEAN NOT NULL,
    started_at  BIGINT  NOT NULL,
    last_seen   BIGINT  NOT NULL
);
