#!/usr/bin/env python3
"""What a client's UPDATE with its capture trigger, the take of its changes in pages, one sfpg.write_back, the same
rows staged by COPY and written by sfpg.write_back_staged (V25), and one
sfpg.restore_refused of 5,000 Contact-like rows (52 columns) cost per row, in the PostgreSQL backend's own CPU time (so that other load on the
machine does not count), as the proxy calls them: in a transaction that captured an UPDATE
of every row, with its push ticket.

Usage: write-back-cost.py DSN [ROWS]  (DSN a libpq connection string of the control
schema's owner, on the same machine as the server, with `sfpg migrate` applied; it creates
and drops the schema `write_back_cost`). Needs psycopg 3.
"""
import json
import os
import statistics
import sys
import time

import psycopg

TICK = os.sysconf("SC_CLK_TCK")
ROUNDS = 5


def backend_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def create_table(c, rows):
    columns = (
        [f"t{i} text" for i in range(1, 21)]
        + [f"n{i} numeric" for i in range(1, 9)]
        + [f"b{i} boolean" for i in range(1, 9)]
        + [f"d{i} date" for i in range(1, 9)]
        + [f"ts{i} timestamptz" for i in range(1, 5)]
    )
    c.execute("DROP SCHEMA IF EXISTS write_back_cost CASCADE; CREATE SCHEMA write_back_cost")
    c.execute(
        "CREATE TABLE write_back_cost.contact (id bigserial PRIMARY KEY, sfid varchar(18) UNIQUE,"
        " systemmodstamp timestamptz, isdeleted boolean NOT NULL DEFAULT false, "
        + ", ".join(columns) + ")"
    )
    c.execute("CREATE INDEX ON write_back_cost.contact (systemmodstamp)")
    if c.execute("SELECT to_regproc('sfpg.install_capture_triggers') IS NOT NULL").fetchone()[0]:
        c.execute("SELECT sfpg.install_capture_triggers('write_back_cost.contact')")
    else:  # before V20
        c.execute(
            "CREATE TRIGGER sfpg_capture AFTER INSERT OR UPDATE OR DELETE ON write_back_cost.contact"
            " FOR EACH ROW EXECUTE FUNCTION sfpg.capture_change()"
        )
    names = [column.split()[0] for column in columns]
    values = (
        ["'text value ' || g"] * 20 + ["g"] * 8 + ["g % 2 = 0"] * 8
        + ["date '2020-01-01' + g"] * 8 + ["now()"] * 4
    )
    c.execute("BEGIN")
    c.execute("SELECT set_config('sfpg.origin', 'sync:' || key, true) FROM sfpg.origin_key")
    c.execute(
        f"INSERT INTO write_back_cost.contact (sfid, systemmodstamp, {', '.join(names)})"
        f" SELECT '003' || lpad(g::text, 15, '0'), '2026-01-01', {', '.join(values)}"
        f" FROM generate_series(1, {rows}) g"
    )
    c.execute("COMMIT")
    c.execute("VACUUM ANALYZE write_back_cost.contact")


def measure(c, pid, function, ticket, rows):
    cpu, wall = [], []
    for _ in range(ROUNDS):
        c.execute("SAVEPOINT round")
        cpu0, wall0 = backend_cpu(pid), time.monotonic()
        count = c.execute(
            f"SELECT {function}(%s, 'write_back_cost', 'contact', %s)", (ticket, rows)
        ).fetchone()[0]
        cpu.append(backend_cpu(pid) - cpu0)
        wall.append(time.monotonic() - wall0)
        c.execute("ROLLBACK TO SAVEPOINT round")
    cpu, wall = statistics.median(cpu), statistics.median(wall)
    print(
        f"{function}: {count} rows, median of {ROUNDS}: backend CPU {cpu * 1000:.0f} ms"
        f" ({cpu / count * 1e6:.0f} us a row), wall {wall * 1000:.0f} ms"
    )


def copy_text(value):
    """A JSON value as a cell of COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = str(value)
    for char, escaped in [("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")]:
        text = text.replace(char, escaped)
    return text


def measure_staged(c, pid, ticket, rows):
    """The same rows as `rows` (the JSON array sfpg.write_back takes, every element with the
    same keys) staged by COPY and written by sfpg.write_back_staged (V25), as the proxy
    writes a bulk push's read-back: the three statements together."""
    elements = json.loads(rows)
    columns = list(elements[0].keys())
    data = "".join("\t".join(copy_text(e[k]) for k in columns) + "\n" for e in elements)
    cpu, wall = [], []
    for _ in range(ROUNDS):
        c.execute("SAVEPOINT round")
        cpu0, wall0 = backend_cpu(pid), time.monotonic()
        staging = c.execute(
            "SELECT sfpg.write_back_staging(%s, 'write_back_cost', 'contact', %s)",
            (ticket, columns),
        ).fetchone()[0]
        with c.cursor().copy(f"COPY {staging} FROM STDIN") as copy:
            copy.write(data)
        count = c.execute(
            "SELECT sfpg.write_back_staged(%s, 'write_back_cost', 'contact', %s)",
            (ticket, staging),
        ).fetchone()[0]
        cpu.append(backend_cpu(pid) - cpu0)
        wall.append(time.monotonic() - wall0)
        c.execute("ROLLBACK TO SAVEPOINT round")
    cpu, wall = statistics.median(cpu), statistics.median(wall)
    print(
        f"sfpg.write_back_staged (COPY): {count} rows, median of {ROUNDS}: backend CPU"
        f" {cpu * 1000:.0f} ms ({cpu / count * 1e6:.0f} us a row), wall {wall * 1000:.0f} ms"
    )


def measure_capture(c, pid, rows):
    """A client's UPDATE of every row through the proxy's origin, so the capture trigger
    records each change (V22), beside the same UPDATE under the sync origin, where the
    trigger returns at once: the statement alone."""
    for origin, label in [
        ("'proxy'", "UPDATE captured (origin proxy)"),
        ("'sync:' || (SELECT key FROM sfpg.origin_key)", "UPDATE alone (origin sync)"),
    ]:
        cpu = []
        for round in range(ROUNDS):
            c.execute("BEGIN")
            c.execute(f"SELECT set_config('sfpg.origin', {origin}, true)")
            cpu0 = backend_cpu(pid)
            c.execute("UPDATE write_back_cost.contact SET t1 = %s || id", (f"round {round} ",))
            cpu.append(backend_cpu(pid) - cpu0)
            c.execute("ROLLBACK")
        cpu = statistics.median(cpu)
        print(f"{label}: {rows} rows, median of {ROUNDS}: backend CPU {cpu * 1000:.0f} ms"
              f" ({cpu / rows * 1e6:.0f} us a row)")


def measure_take(c, pid, rows, page=1000):
    """The proxy's take of the captured changes of an UPDATE of every row (one column), in
    pages of `page` rows as the proxy asks for them (V21, V24)."""
    cpu = []
    for round in range(ROUNDS):
        c.execute("BEGIN")
        c.execute("SELECT set_config('sfpg.origin', 'proxy', true)")
        c.execute("UPDATE write_back_cost.contact SET t1 = %s || id", (f"round {round} ",))
        ticket = c.execute("SELECT sfpg.push_ticket(pg_current_xact_id())").fetchone()[0]
        cpu0, taken, after = backend_cpu(pid), 0, (None, None)
        while True:
            text = c.execute(
                "SELECT sfpg.take_pending_changes(%s, %s, %s, %s)", (ticket, page, *after)
            ).fetchone()[0]
            changes = json.loads(text)
            taken += len(changes)
            if len(changes) < page:
                break
            after = max((change["table_oid"], change["row_id"]) for change in changes)
        cpu.append(backend_cpu(pid) - cpu0)
        c.execute("ROLLBACK")
    cpu = statistics.median(cpu)
    print(f"take_pending_changes in pages of {page:,}: {taken} changes, median of {ROUNDS}:"
          f" backend CPU {cpu * 1000:.0f} ms ({cpu / rows * 1e6:.0f} us a row)")


def main():
    dsn, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    with psycopg.connect(dsn, autocommit=True) as c:
        create_table(c, rows)
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        measure_capture(c, pid, rows)
        measure_take(c, pid, rows)
        c.execute("SET sfpg.origin = 'proxy'")
        c.execute("BEGIN")
        c.execute("UPDATE write_back_cost.contact SET t1 = 'changed ' || id")
        ticket = c.execute("SELECT sfpg.push_ticket(pg_current_xact_id())").fetchone()[0]
        c.execute("SELECT sfpg.take_pending_changes(%s)", (ticket,))
        # What a read-back gives: every column, a newer stamp, a value Salesforce set.
        read_back = c.execute(
            "SELECT json_agg(to_jsonb(c) - 'isdeleted' || jsonb_build_object("
            " 'systemmodstamp', '2026-06-01T00:00:00Z', 't2', 'from Salesforce ' || id))::text"
            " FROM write_back_cost.contact c"
        ).fetchone()[0]
        before = c.execute(
            "SELECT json_agg(json_build_object('id', id, 'row', to_jsonb(c)))::text"
            " FROM write_back_cost.contact c"
        ).fetchone()[0]
        measure(c, pid, "sfpg.write_back", ticket, read_back)
        if c.execute("SELECT to_regproc('sfpg.write_back_staged') IS NOT NULL").fetchone()[0]:
            measure_staged(c, pid, ticket, read_back)
        measure(c, pid, "sfpg.restore_refused", ticket, before)
        c.execute("ROLLBACK")
        c.execute("DROP SCHEMA write_back_cost CASCADE")


if __name__ == "__main__":
    main()
