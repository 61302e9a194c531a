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
        With --store ROOT --name NAME --node NODE instead of --live/--stage, each BUNDLE is installed into a certkeeper
        store the way CertificateStore.install does it (see StoreInstaller below); t0 is taken just before the symlink
        swap of live/NAME, after the complete version directory is written, fsynced and renamed into archive/;
        --t0-log FILE then records each rotation's t0 as wall-clock time ("<index> <epoch s> <bundle> <version>"),
        to line up with the daemons' time-stamped logs.
    rotate_poll.py install --store ROOT --name NAME --node NODE --bundle FILE
        the same store install once, untimed (a renewer's first certificate).

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


# --- certkeeper store install ---------------------------------------------------------------------------------------
# Mirrors Sources/CertStore/CertificateStore.swift `install` (and CertificateMeta / BundleVerifier for meta.json), so
# the renewer's daemon sees exactly what `certkeeper renew` produces, without an ACME issuance per rotation:
#   1. archive/NAME/.tmp-vNNNNNN-<utc stamp>-<random>/ with cert.pem, chain.pem, fullchain.pem (0644), privkey.pem,
#      bundle.pem (0600), meta.json (0644), each written with O_EXCL and fsynced; the directory fsynced, renamed to
#      archive/NAME/vNNNNNN-<utc stamp>, archive/NAME fsynced;
#   2. the swap: a new symlink live/.NAME.tmp-<random> -> ../archive/NAME/vNNNNNN-..., renamed over live/NAME, live/
#      fsynced; then versions beyond the newest 5 are pruned (never the live one).
# Done under the store's lock (flock on ROOT/lock), as `renew` does. meta.json has CertificateMeta's keys (sorted,
# pretty-printed, ISO 8601 dates in whole seconds); the daemon's catalogue is built from it.

def _pem_blocks(text):
    blocks, current = [], None
    for line in text.splitlines():
        line = line.rstrip(" \t")
        if line.startswith("-----BEGIN "):
            current = [line]
        elif line.startswith("-----END ") and current is not None:
            current.append(line)
            blocks.append((line[len("-----END "):-5], "\n".join(current) + "\n"))
            current = None
        elif current is not None and line:
            current.append(line)
    return blocks


def _b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(date):
    return date.strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle_files(bundle_path, name, version, node, now):
    """The store's files for one bundle (leaf + intermediates + key): [(file name, bytes, mode)]."""
    import datetime
    import hashlib
    import ipaddress
    import json
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    with open(bundle_path) as f:
        blocks = _pem_blocks(f.read())
    certificates = [text for label, text in blocks if label == "CERTIFICATE"]
    key = next(text for label, text in blocks if label.endswith("PRIVATE KEY"))
    leaf = x509.load_pem_x509_certificate(certificates[0].encode())
    der = leaf.public_bytes(Encoding.DER)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        domains = san.get_values_for_type(x509.DNSName) + [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        domains = []
    magnitude = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 7) // 8 or 1, "big")
    serial_hex = magnitude.lstrip(b"\0").hex() or "00"
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    serial_der = magnitude if magnitude[0] < 0x80 else b"\0" + magnitude
    public_key = leaf.public_key()
    key_type = ("ec" + {"secp256r1": "256", "secp384r1": "384", "secp521r1": "521"}[public_key.curve.name]
                if isinstance(public_key, ec.EllipticCurvePublicKey) else "rsa%d" % public_key.key_size)
    meta = {
        "name": name, "version": version, "domains": domains, "serial": serial_hex,
        "notBefore": _iso(leaf.not_valid_before), "notAfter": _iso(leaf.not_valid_after),  # naive UTC
        "sha256": hashlib.sha256(der).hexdigest(), "issuer": leaf.issuer.rfc4514_string(), "keyType": key_type,
        "issuedBy": node, "installedAt": _iso(now),
    }
    if aki:
        meta["ariCertID"] = _b64url(aki) + "." + _b64url(serial_der)
    certificate, chain = certificates[0], "".join(certificates[1:])
    fullchain = certificate + chain
    return [
        ("cert.pem", certificate.encode(), 0o644),
        ("chain.pem", chain.encode(), 0o644),
        ("fullchain.pem", fullchain.encode(), 0o644),
        ("privkey.pem", key.encode(), 0o600),
        ("bundle.pem", (fullchain + key).encode(), 0o600),
        ("meta.json", (json.dumps(meta, indent=2, sort_keys=True, separators=(",", " : ")) + "\n").encode(), 0o644),
    ]


def _fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreInstaller:
    """One certificate name in one certkeeper store; prepare() then swap() is CertificateStore.install."""

    KEEP_VERSIONS = 5

    def __init__(self, root, name, node):
        self.root, self.name, self.node = root.rstrip("/"), name, node
        self.live_root = f"{self.root}/live"
        self.archive = f"{self.root}/archive/{name}"
        self.lock_fd = None

    def _versions(self):
        found = []
        for entry in os.listdir(self.archive) if os.path.isdir(self.archive) else []:
            parts = entry.split("-")
            if len(parts) == 2 and parts[0][:1] == "v" and parts[0][1:].isdigit() and len(parts[1]) == 14:
                found.append((int(parts[0][1:]), entry))
        return sorted(found)

    def prepare(self, bundle_path):
        """Takes the lock, writes the complete version directory into archive/; returns its name."""
        import datetime
        import fcntl
        for path, mode in [(self.root, 0o755), (self.live_root, 0o755), (f"{self.root}/archive", 0o700),
                           (f"{self.root}/accounts", 0o700), (f"{self.root}/state", 0o700), (self.archive, 0o700)]:
            os.makedirs(path, mode=mode, exist_ok=True)
        self.lock_fd = os.open(f"{self.root}/lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        now = datetime.datetime.now(datetime.timezone.utc)
        versions = self._versions()
        number = (versions[-1][0] if versions else 0) + 1
        version_name = "v%06d-%s" % (number, now.strftime("%Y%m%d%H%M%S"))
        temporary = f"{self.archive}/.tmp-{version_name}-{os.urandom(6).hex()}"
        os.mkdir(temporary, 0o700)
        for file_name, data, mode in bundle_files(bundle_path, self.name, number, self.node, now):
            fd = os.open(f"{temporary}/{file_name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            try:
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_directory(temporary)
        os.rename(temporary, f"{self.archive}/{version_name}")
        _fsync_directory(self.archive)
        return version_name

    def swap(self, version_name):
        """The atomic switch of live/NAME to the prepared version, live/ fsynced, old versions pruned, lock released."""
        temporary_link = f"{self.live_root}/.{self.name}.tmp-{os.urandom(6).hex()}"
        os.symlink(f"../archive/{self.name}/{version_name}", temporary_link)
        os.rename(temporary_link, f"{self.live_root}/{self.name}")
        _fsync_directory(self.live_root)
        for _, entry in self._versions()[:-self.KEEP_VERSIONS]:
            if entry != version_name:
                shutil.rmtree(f"{self.archive}/{entry}")
        os.close(self.lock_fd)
        self.lock_fd = None


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
    parser.add_argument("mode", choices=["wait", "rotate", "install"])
    parser.add_argument("--targets")
    parser.add_argument("--bundle")
    parser.add_argument("--live")
    parser.add_argument("--stage")
    parser.add_argument("--out")
    parser.add_argument("--install-cmd")
    parser.add_argument("--store")
    parser.add_argument("--name")
    parser.add_argument("--node")
    parser.add_argument("--t0-log")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--poll-ms", type=float, default=10)
    parser.add_argument("--gap-ms", type=float, default=200)
    parser.add_argument("bundles", nargs="*")
    args = parser.parse_intermixed_args()
    store = StoreInstaller(args.store, args.name, args.node) if args.store else None
    if args.mode == "install":
        store.swap(store.prepare(args.bundle))
        return
    targets = args.targets.split(",")
    poll = args.poll_ms / 1000

    if args.mode == "wait":
        try:
            wait_all(targets, leaf_der(args.bundle), time.monotonic(), args.timeout, poll)
        except TimeoutError as error:
            sys.exit(f"initial certificate {error}")
        return

    t0_log = open(args.t0_log, "w") if args.t0_log else None
    with open(args.out, "w") as out:
        for index, bundle in enumerate(args.bundles, 1):
            expected = leaf_der(bundle)
            if args.install_cmd:
                start = time.monotonic()
                subprocess.run(["sh", "-c", args.install_cmd + ' "$0"', bundle], check=True)
            elif store:
                version = store.prepare(bundle)
                wall, start = time.time(), time.monotonic()
                store.swap(version)
                if t0_log:
                    t0_log.write(f"{index} {wall:.6f} {os.path.basename(bundle)} {version}\n")
                    t0_log.flush()
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
