"""psycopg 3 through the sfpg proxy, in autocommit: batches in which Salesforce refuses
one row (a negative amount breaks Invoice__c's validation rule), then the same batches
with good rows.

`executemany` and pipeline mode send every statement before one Sync; COPY sends its rows
as one statement. A refusal must raise a psycopg.Error of its SQLSTATE, and the connection
must stay usable. Prints, for each case, the exception raised (if any) and what a query
afterwards returned, as JSON for tests/proxy_clients.rs. The connection URL comes from
SFPG_PROXY_URL.
"""

import json
import os

import psycopg

ROWS = 300
REFUSED = 150
INSERT = "INSERT INTO salesforce.invoice__c (account__c, amount__c) VALUES (%s, %s)"


def executemany(conn, rows):
    conn.cursor().executemany(INSERT, rows)


def pipeline(conn, rows):
    with conn.pipeline():
        cursor = conn.cursor()
        for row in rows:
            cursor.execute(INSERT, row)


def executemany_in_pipeline(conn, rows):
    with conn.pipeline():
        conn.cursor().executemany(INSERT, rows)


def copy(conn, rows):
    with conn.cursor().copy("COPY salesforce.invoice__c (account__c, amount__c) FROM STDIN") as out:
        for row in rows:
            out.write_row(row)


CASES = (executemany, pipeline, executemany_in_pipeline, copy)


def attempt(conn, case, rows):
    outcome = {}
    try:
        case(conn, rows)
        outcome["error"] = None
    except Exception as error:  # what the client raised, whatever it is, is the result
        outcome["error"] = f"{type(error).__module__}.{type(error).__qualname__}"
        outcome["sqlstate"] = getattr(error, "sqlstate", None)
    try:
        outcome["after"] = conn.execute("SELECT 40 + 2").fetchone()[0]
    except Exception as error:
        outcome["after"] = f"{type(error).__qualname__}: {error}"
    return outcome


def main() -> None:
    url = os.environ["SFPG_PROXY_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        account = conn.execute(
            "SELECT sfid FROM salesforce.account WHERE sfid IS NOT NULL ORDER BY sfid LIMIT 1"
        ).fetchone()[0]
    refused = [(account, -5 if i == REFUSED else i + 1) for i in range(ROWS)]
    accepted = [(account, i + 1) for i in range(3)]
    done = {}
    # A connection of its own for each case: one left broken must not fail the next.
    for case in CASES:
        conn = psycopg.connect(url, autocommit=True)
        done[case.__name__] = attempt(conn, case, refused)
        conn.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for case in CASES:
            done[f"{case.__name__}_accepted"] = attempt(conn, case, accepted)
    print(json.dumps(done))


if __name__ == "__main__":
    main()
