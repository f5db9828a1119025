#!/usr/bin/env python3
"""Where the heap went at one snapshot of valgrind's massif, by the sfpg code that asked.

Usage: massif-peak.py MASSIF_FILE [SNAPSHOT]

MASSIF_FILE is massif's output (`--massif-out-file`, or `vgdb --pid=P all_snapshots FILE`
taken while the process runs, for a process that is killed rather than exits, as the bulk
bench kills the proxy); SNAPSHOT is a snapshot's number, or `peak` (the default). Each
allocation still live at that snapshot is counted against the nearest frame of sfpg's own
code on its stack (the first frame, from the allocator up, naming an sfpg crate), and the
25 largest are printed in MB.

How docs/benchmarks.md ("A large push's memory") ran the proxy under massif in the bulk
bench: the release binary moved aside and `target/release/sfpg` replaced by a script that
runs `exec valgrind --tool=massif --threshold=0.5 --massif-out-file=/tmp/massif.out.%p
/path/to/the/real/sfpg "$@"`, the bench run as usual, and every few seconds meanwhile
`vgdb --pid=$(pgrep -f 'sfpg.real proxy') all_snapshots /tmp/massif.all`; then
`massif-peak.py /tmp/massif.all`. Put the binary back afterwards.
"""
import collections
import re
import sys

NODE = re.compile(r"\s*n(\d+): (\d+) (.*)")
OWN_CODE = re.compile(r"sfpg|proxy/src|salesforce/src|control/src|sync/src")


def snapshot(text, wanted):
    """The heap tree's lines of snapshot `wanted` (a number, or `peak`)."""
    for snap in re.split(r"\nsnapshot=", text)[1:]:
        number = snap.split("\n", 1)[0].strip()
        if number == wanted or (wanted == "peak" and "heap_tree=peak" in snap):
            return [line for line in snap.split("\n") if NODE.match(line)]
    sys.exit(f"no snapshot {wanted} in the file")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        lines = snapshot(f.read(), sys.argv[2] if len(sys.argv) == 3 else "peak")
    by_frame = collections.Counter()
    position = 0

    def walk(path):
        """Counts the node at `position` and its children; returns its bytes."""
        nonlocal position
        children, size, frame = NODE.match(lines[position]).groups()
        position += 1
        path = path + [frame]
        below = sum(walk(path) for _ in range(int(children)))
        if int(size) > below:
            own = next((f for f in path[1:] if OWN_CODE.search(f)), path[-1])
            by_frame[re.sub(r"0x[0-9A-F]+: ", "", own)[:160]] += int(size) - below
        return int(size)

    walk([])
    print(f"total {sum(by_frame.values()) / 1e6:.1f} MB")
    for frame, size in by_frame.most_common(25):
        print(f"{size / 1e6:8.2f} MB  {frame}")


if __name__ == "__main__":
    sys.setrecursionlimit(100_000)
    main()
