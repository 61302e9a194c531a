#!/usr/bin/env python3
"""Where the time of a certkeeper sync rotation goes, from bench/sync.sh's logs.

    sync_timeline.py T0_LOG MS_FILE RENEWER_LOG FOLLOWER_LOG...

T0_LOG is rotate_poll.py's --t0-log ("<index> <epoch s> <serial>.pem <version>"), MS_FILE its --out (per rotation
"<max ms> <ms per follower...>", followers in the order given here), the logs are the daemons' stderr with each
line prefixed by the wall-clock time the bench's stamper read it ("<epoch s> <daemon's line>"). For every rotation
it finds, in milliseconds after t0 (the renewer's symlink swap):
    bump     the renewer's inotify batch ("store changed", index bumped; wakes the long-polls)
    request  the renewer sending the bundle to that follower (long-poll answered, catalogue compared, GET sent)
    install  the follower's store install done ("installed certificate from peer": pulled, verified, locked,
             written and fsynced, symlink swapped)
    swap     the follower's proxy serving it ("certificate swapped": its own inotify batch, debounce, load)
    served   the bench's poller seeing the new leaf in a handshake (poll interval POLL_MS)
and prints p50 and the maximum of each step across rotations, per follower. Stamps are when the bench read the
line from the daemon's pipe, so each is a bound from above on when the daemon logged it (by well under 1 ms).
"""
import statistics
import sys


def parse_log(path):
    """[(epoch, message, {key: value})] for every stamped line."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) < 4:
                continue
            try:
                stamp = float(parts[0])
            except ValueError:
                continue
            rest = parts[3]  # parts: stamp, the daemon's ISO time, level, "<message> key=value ..."
            fields = {}
            for token in rest.split():
                key, eq, value = token.partition("=")
                if eq:
                    fields[key] = value.strip('"')
            events.append((stamp, rest, fields))
    return events


def serial_hex(serial):
    text = format(serial, "x")
    return text if len(text) % 2 == 0 else "0" + text


def first(events, start, end, predicate):
    for stamp, message, fields in events:
        if start <= stamp < end and predicate(message, fields):
            return (stamp - start) * 1000
    return None


def main():
    t0_path, ms_path, renewer_path, *follower_paths = sys.argv[1:]
    rotations = []
    with open(t0_path) as f:
        for line in f:
            index, epoch, bundle, _ = line.split()
            rotations.append((int(index), float(epoch), serial_hex(int(bundle.split(".")[0]))))
    with open(ms_path) as f:
        served = [[float(v) for v in line.split()[1:]] for line in f if line.strip()]
    renewer = parse_log(renewer_path)
    followers = [(path.rstrip("/").split("/")[-2], parse_log(path)) for path in follower_paths]
    steps = ["bump", "request", "install", "swap", "served"]
    table = {name: {step: [] for step in steps} for name, _ in followers}
    for position, (index, t0, serial) in enumerate(rotations):
        end = rotations[position + 1][1] if position + 1 < len(rotations) else t0 + 60
        bump = first(renewer, t0, end, lambda m, f: m.startswith("store changed"))
        for column, (name, events) in enumerate(followers):
            row = table[name]
            row["bump"].append(bump)
            row["request"].append(first(renewer, t0, end, lambda m, f: m.startswith("sending certificate to peer") and f.get("peer") == name))
            row["install"].append(first(events, t0, end, lambda m, f: m.startswith("installed certificate from peer") and f.get("cert.serial") == serial))
            row["swap"].append(first(events, t0, end, lambda m, f: m.startswith("certificate swapped") and f.get("cert.serial") == serial))
            row["served"].append(served[position][column] if position < len(served) else None)

    print(f"where the time goes, ms after the renewer's symlink swap (p50 / max over {len(rotations)} rotations):")
    print("%-10s" % "follower" + "".join("%18s" % step for step in steps))
    for name, row in table.items():
        cells = []
        for step in steps:
            values = [v for v in row[step] if v is not None]
            missing = len(row[step]) - len(values)
            cell = "%.0f / %.0f" % (statistics.median(values), max(values)) if values else "-"
            cells.append("%18s" % (cell + (f" ({missing} n/a)" if missing else "")))
        print("%-10s" % name + "".join(cells))


if __name__ == "__main__":
    main()
