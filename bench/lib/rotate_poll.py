#!/usr/bin/env python3
"""Installs certificate bundles one after another and times how long until every follower serves each one.

    rotate_poll.py wait   --targets A:P,B:P --bundle FILE [--timeout S]
        waits until every target serves FILE's (first) certificate.
    rotate_poll.py rotate --targets A:P,B:P --live PATH --stage DIR --out FILE [--timeout S] [--poll-ms MS]
                          [--gap-ms MS] [--install-cmd CMD] BUNDLE...
        for each BUNDLE: copies it to DIR (write + fsync), takes t0, renames it over PATH (atomic), then polls every
        target (TLS handshake, compares the served leaf's DER with the bundle's) until all serve it. Writes one line
        per rotation to FILE: "<max ms> <ms per target...>". With --install-cmd, t0 is taken just before running
        `CMD BUNDLE` (sh -c) instead of the rename (for installs that go through a program).

A rotation not served everywhere within --timeout seconds is an error (exit 1): the measurement is then not valid.
Runs inside a namespace that reaches the targets (the renewer's). Not a test: it asserts nothing about timings.
"""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time


def leaf_der(bundle_path):
    with open(bundle_path) as f:
        text = f.read()
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(text[begin:end])


CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


def served_der(target, timeout=1.0):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw:
            with CONTEXT.wrap_socket(raw, server_hostname="sync.bench.test") as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def wait_all(targets, expected, start, timeout, poll):
    """Returns {target: seconds since start} once each target serves `expected`; raises TimeoutError."""
    done = {}
    deadline = start + timeout
    while len(done) < len(targets):
        for target in targets:
            if target not in done and served_der(target) == expected:
                done[target] = time.monotonic() - start
        if len(done) == len(targets):
            break
        if time.monotonic() > deadline:
            missing = [t for t in targets if t not in done]
            raise TimeoutError(f"not served within {timeout} s by {', '.join(missing)}")
        time.sleep(poll)
    return done


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["wait", "rotate"])
    parser.add_argument("--targets", required=True)
    parser.add_argument("--bundle")
    parser.add_argument("--live")
    parser.add_argument("--stage")
    parser.add_argument("--out")
    parser.add_argument("--install-cmd")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--poll-ms", type=float, default=10)
    parser.add_argument("--gap-ms", type=float, default=200)
    parser.add_argument("bundles", nargs="*")
    args = parser.parse_intermixed_args()
    targets = args.targets.split(",")
    poll = args.poll_ms / 1000

    if args.mode == "wait":
        try:
            wait_all(targets, leaf_der(args.bundle), time.monotonic(), args.timeout, poll)
        except TimeoutError as error:
            sys.exit(f"initial certificate {error}")
        return

    with open(args.out, "w") as out:
        for index, bundle in enumerate(args.bundles, 1):
            expected = leaf_der(bundle)
            if args.install_cmd:
                start = time.monotonic()
                subprocess.run(["sh", "-c", args.install_cmd + ' "$0"', bundle], check=True)
            else:
                staged = os.path.join(args.stage, os.path.basename(args.live) + ".new")
                with open(bundle, "rb") as source, open(staged, "wb") as target:
                    shutil.copyfileobj(source, target)
                    target.flush()
                    os.fsync(target.fileno())
                os.chmod(staged, 0o600)
                start = time.monotonic()
                os.rename(staged, args.live)
            try:
                done = wait_all(targets, expected, start, args.timeout, poll)
            except TimeoutError as error:
                sys.exit(f"rotation {index} ({os.path.basename(bundle)}) {error}")
            per_target = [done[t] * 1000 for t in targets]
            out.write(" ".join(f"{ms:.1f}" for ms in [max(per_target)] + per_target) + "\n")
            out.flush()
            print(f"  rotation {index}/{len(args.bundles)}: {max(per_target):.0f} ms", file=sys.stderr, flush=True)
            time.sleep(args.gap_ms / 1000)


if __name__ == "__main__":
    main()
