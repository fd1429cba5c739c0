-- The nodes serving this database, for sys/ha-status (see the PostgreSQL
-- migration). One process owns a SQLite database, so this holds one row;
-- it keeps both schemas alike.
CREATE TABLE nodes (
    id          TEXT    PRIMARY KEY,
    hostname    TEXT    NOT NULL,
    api_address TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    sealed      INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) WITHOUT ROWID;
