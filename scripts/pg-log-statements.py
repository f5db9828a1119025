#!/usr/bin/env python3
"""The time one session spent in each kind of statement, from PostgreSQL's log.

Usage: pg-log-statements.py LOG MARKER

LOG is a server log written with `log_min_duration_statement = 0` and
`log_line_prefix = '%m [%p] '`; MARKER is text of the statement the session starts with
(`"salesforce.contact SET title"` for the bulk bench's UPDATE). From the first statement
holding MARKER on, it sums the durations of that session's statements by their first 50
characters (numbers made `N`), parse, bind and execute each counted, and prints the other
sessions' total beside. A threshold above 0 leaves out short statements: the take's pages
of the bulk bench (59 ms each) were missed that way at 100 ms.
"""
import collections
import re
import sys

LINE = re.compile(
    r"^(\S+ \S+) \S+ \[(\d+)\] LOG:  duration: ([\d.]+) ms  "
    r"(?:statement|execute [^:]*|bind [^:]*|parse [^:]*): (.{0,90})"
)


def main():
    log, marker = sys.argv[1], sys.argv[2]
    session, by_kind, others = None, collections.OrderedDict(), 0.0
    with open(log, errors="replace") as lines:
        for line in lines:
            if "duration:" not in line[:80]:
                continue
            found = LINE.match(line)
            if not found:
                continue
            _, pid, ms, statement = found.groups()
            if session is None:
                if marker not in statement:
                    continue
                session = pid
            if pid != session:
                others += float(ms)
                continue
            kind = re.sub(r"\d+", "N", statement[:50])
            count, total = by_kind.get(kind, (0, 0.0))
            by_kind[kind] = (count + 1, total + float(ms))
    if session is None:
        sys.exit(f"no statement holds {marker!r}")
    for kind, (count, total) in by_kind.items():
        print(f"{count:5d} {total / 1000:8.2f} s  {kind}")
    print(f"session {session}: {sum(t for _, t in by_kind.values()) / 1000:.2f} s;"
          f" other sessions meanwhile: {others / 1000:.2f} s")


if __name__ == "__main__":
    main()
