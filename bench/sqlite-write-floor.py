#!/usr/bin/env python3
"""The storage floor for secretd's KV v2 write on SQLite.

Runs the statements of one secretd KV v2 write (ENSURE_KV_METADATA, the
metadata read, INSERT data key, INSERT version, BUMP version, and the three
pruning statements once a key has more than 10 versions) against secretd's
own schema (migrations/sqlite), with WAL and synchronous=FULL like secretd,
in one thread with no server around it. What it reaches is roughly the most
durable writes/s SQLite gives on this disk for this transaction shape (Python
adds its own overhead, so the real ceiling is a little higher).

    python3 bench/sqlite-write-floor.py [--writes 5000] [--keys 100] [--batch 1] [--dir /var/tmp]

--batch N commits N writes per transaction (one fsync per N writes): what a
group commit in the server could reach.
"""
import argparse
import glob
import os
import sqlite3
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENSURE = ("INSERT INTO kv_metadata (mount_uuid, path, current_version, oldest_version, "
          "max_versions, cas_required, delete_version_after, created_at, updated_at) "
          "VALUES (?1, ?2, 0, 0, 0, FALSE, 0, ?3, ?3) ON CONFLICT (mount_uuid, path) DO NOTHING")
LOCK = ("SELECT m.current_version, m.oldest_version, m.max_versions, m.cas_required, "
        "m.delete_version_after, m.custom_dek, m.custom_metadata, c.max_versions "
        "FROM kv_metadata m LEFT JOIN data_keys cdk ON cdk.id = m.custom_dek "
        "LEFT JOIN kv_config c ON c.mount_uuid = m.mount_uuid "
        "WHERE m.mount_uuid = ?1 AND m.path = ?2")
INSERT_KEY = "INSERT INTO data_keys (id, term, wrapped) VALUES (?1, ?2, ?3)"
INSERT_VERSION = ("INSERT INTO kv_versions (mount_uuid, path, version, created_at, deletion_time, "
                  "destroyed, dek, ciphertext) VALUES (?1, ?2, ?3, ?4, NULL, FALSE, ?5, ?6)")
BUMP = ("UPDATE kv_metadata SET current_version = ?3, updated_at = ?4, oldest_version = "
        "CASE WHEN oldest_version = 0 THEN ?3 ELSE oldest_version END "
        "WHERE mount_uuid = ?1 AND path = ?2")
PRUNE_KEYS = ("DELETE FROM data_keys WHERE id IN (SELECT dek FROM kv_versions WHERE "
              "mount_uuid = ?1 AND path = ?2 AND version <= ?3 AND dek IS NOT NULL)")
PRUNE_VERSIONS = "DELETE FROM kv_versions WHERE mount_uuid = ?1 AND path = ?2 AND version <= ?3"
PRUNE_OLDEST = ("UPDATE kv_metadata SET oldest_version = ?3 "
                "WHERE mount_uuid = ?1 AND path = ?2 AND oldest_version < ?3")
KEEP = 10


def write_one(db, mount, path, now):
    db.execute(ENSURE, (mount, path, now))
    current = db.execute(LOCK, (mount, path)).fetchone()[0]
    version = current + 1
    dek = os.urandom(16)
    db.execute(INSERT_KEY, (dek, 1, os.urandom(60)))
    db.execute(INSERT_VERSION, (mount, path, version, now, dek, os.urandom(1024 + 40)))
    db.execute(BUMP, (mount, path, version, now))
    if version > KEEP:
        cutoff = version - KEEP
        db.execute(PRUNE_KEYS, (mount, path, cutoff))
        db.execute(PRUNE_VERSIONS, (mount, path, cutoff))
        db.execute(PRUNE_OLDEST, (mount, path, cutoff + 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"],
                    help="NORMAL/OFF skip the per-commit fsync: for finding its cost only")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = sqlite3.connect(os.path.join(tmp, "floor.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {args.synchronous}")
        db.execute("PRAGMA foreign_keys = ON")
        for migration in sorted(glob.glob(os.path.join(ROOT, "migrations/sqlite/*.sql"))):
            db.executescript(open(migration).read())
        mount = "00000000-0000-4000-8000-000000000001"
        # Warm-up: every key gets its first versions, as in the benchmark.
        for i in range(args.keys):
            db.execute("BEGIN IMMEDIATE")
            write_one(db, mount, f"bench-write-{i}", time.time_ns())
            db.execute("COMMIT")
        start = time.perf_counter()
        done = 0
        while done < args.writes:
            db.execute("BEGIN IMMEDIATE")
            for _ in range(args.batch):
                write_one(db, mount, f"bench-write-{done % args.keys}", time.time_ns())
                done += 1
            db.execute("COMMIT")
        elapsed = time.perf_counter() - start
        print(f"{done} writes in {elapsed:.2f} s: {done / elapsed:,.0f} writes/s, "
              f"{elapsed / done * 1e6:.0f} us per write, {args.batch} per transaction "
              f"(SQLite {sqlite3.sqlite_version}, WAL, synchronous={args.synchronous}, {tmp})")


if __name__ == "__main__":
    main()
