#!/usr/bin/env python3
"""bench/leases.py: the lease manager on PostgreSQL, as issue 5 asks.

1. Issuance: N dynamic credentials from the database engine (32 clients).
2. Revocation: all N made due at once (revoke-prefix with sync=false);
   leases revoked per second by the expiry worker until none is left.
3. Restart to ready: with 1k, 100k and 1M leases stored, the time from
   starting the process to `sys/health` answering 200 (unsealed).

The role's statements are one INSERT each, so the numbers are those of
secretd's lease machinery, not of PostgreSQL creating and dropping roles.
Leases for step 3 are copies of one real lease's row, due in an hour.

Usage: bench/leases.py [--leases 10000] [--stored 1000,100000,1000000]
Needs: a release build (cargo build --release -p secretd), PostgreSQL at
$PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), psql.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = os.environ.get("PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def db_url(name):
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def call(addr, method, path, token="", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{addr}/v1/{path}", data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, binary, config, log):
        self.binary, self.config, self.log = binary, config, log
        self.proc = None

    def start(self, addr, initialized=True):
        """Starts the server; returns the seconds until it answers (a
        new one: at all; an initialised one: unsealed)."""
        started = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "server", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        while True:
            try:
                status, body = call(addr, "GET", "sys/health?uninitcode=200&sealedcode=299")
                if status == 200 and not (initialized and body.get("sealed", True)):
                    return time.monotonic() - started
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"secretd exited; see {self.log}")
            if time.monotonic() - started > 120:
                sys.exit(f"secretd was not ready within 120 s; see {self.log}")
            time.sleep(0.005)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--leases", type=int, default=10_000)
    parser.add_argument("--stored", default="1000,100000,1000000")
    args = parser.parse_args()
    binary = os.environ.get("SECRETD_BIN", os.path.join(ROOT, "target/release/secretd"))
    work = tempfile.mkdtemp(prefix="secretd-leases-bench.")
    storage, target = (f"secretd_bench_{uuid.uuid4().hex[:12]}" for _ in range(2))
    psql(ADMIN, f"CREATE DATABASE {storage}")
    psql(ADMIN, f"CREATE DATABASE {target}")
    server = None
    try:
        psql(db_url(target), "CREATE TABLE issued (name text); CREATE TABLE revoked (name text)")
        with open(os.path.join(work, "seal.key"), "w") as f:
            f.write(os.urandom(32).hex())
        port = free_port()
        addr = f"http://127.0.0.1:{port}"
        config = os.path.join(work, "secretd.toml")
        with open(config, "w") as f:
            f.write(f'[listener]\naddress = "127.0.0.1:{port}"\ntls_disable = true\n\n'
                    f'[storage]\nurl = "{db_url(storage)}"\n\n'
                    f'[seal]\ntype = "static"\nkey_file = "{work}/seal.key"\n')
        server = Server(binary, config, os.path.join(work, "secretd.log"))
        server.start(addr, initialized=False)
        status, init = call(addr, "PUT", "sys/init", body={})
        assert status == 200, init
        token = init["root_token"]
        for path, body in [
            ("sys/mounts/db", {"type": "database"}),
            ("db/config/pg", {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/" + target,
                "username": "postgres", "password": "unused-locally", "allowed_roles": "*"}),
            ("db/roles/r", {
                "db_name": "pg", "default_ttl": "1h",
                "creation_statements": "INSERT INTO issued VALUES ('{{name}}')",
                "revocation_statements": "INSERT INTO revoked VALUES ('{{name}}')"}),
        ]:
            status, body = call(addr, "POST", path, token, body)
            assert status in (200, 204), (path, status, body)

        # 1. Issuance.
        per_client = args.leases // 32
        errors = []

        def client():
            for _ in range(per_client):
                status, body = call(addr, "GET", "db/creds/r", token)
                if status != 200:
                    errors.append((status, body))

        threads = [threading.Thread(target=client) for _ in range(32)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        issue_s = time.monotonic() - started
        issued = per_client * 32
        assert not errors, errors[:3]

        # 2. Revocation by the worker.
        started = time.monotonic()
        status, body = call(addr, "PUT", "sys/leases/revoke-prefix/db/creds/r", token, {"sync": False})
        assert status == 204, body
        while int(psql(db_url(storage), "SELECT count(*) FROM leases")) > 0:
            if time.monotonic() - started > 600:
                sys.exit("the leases were not all revoked within 10 minutes")
            time.sleep(0.05)
        revoke_s = time.monotonic() - started
        revoked = int(psql(db_url(target), "SELECT count(DISTINCT name) FROM revoked"))
        assert revoked == issued, (revoked, issued)

        # 3. Restart to ready over stored leases.
        status, body = call(addr, "GET", "db/creds/r", token)
        lease = body["lease_id"]
        restarts = []
        stored = 1
        for want in [int(n) for n in args.stored.split(",")]:
            psql(db_url(storage),
                 "INSERT INTO leases (id, mount_uuid, role, token_hash, issued_at, expire_at, "
                 "last_renewal, renewable, dek, secret, due_at, attempts, irrevocable, last_error) "
                 f"SELECT '{lease}/copy' || g, mount_uuid, role, token_hash, issued_at, "
                 "expire_at + 3600000000000, NULL, renewable, dek, secret, due_at + 3600000000000, "
                 f"0, FALSE, NULL FROM leases, generate_series({stored}, {want - 1}) AS g "
                 f"WHERE id = '{lease}'")
            stored = want
            server.stop()
            ready = server.start(addr)
            restarts.append((want, ready))

        print(f"| leases issued | {issued:,} in {issue_s:.1f} s = **{issued / issue_s:,.0f}/s** (32 clients) |")
        print(f"| leases revoked by the worker | {issued:,} in {revoke_s:.1f} s = **{issued / revoke_s:,.0f}/s** |")
        for n, ready in restarts:
            print(f"| restart to ready with {n:,} leases stored | **{ready * 1000:.0f} ms** |")
    finally:
        if server and server.proc and server.proc.poll() is None:
            server.stop()
        for name in (storage, target):
            psql(ADMIN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
