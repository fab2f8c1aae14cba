"""sandbox-probe: a test fixture that tries to escape the plugin sandbox.

A codec (world codec-plugin) whose `init`, `compress` and `decompress` each
run every probe below and return an `err` with one line per probe:

    DENIED  <probe>: <what happened>
    ALLOWED <probe>: <what leaked>

A host whose WASI context has no preopened directories, no sockets, no
environment and no inherited stdio gets only DENIED lines; the host test
asserts there is no ALLOWED line and that every probe name is present. Lines
starting with `INFO` report capabilities the contract does not forbid outright
(clock, randomness) and are not a verdict.

This file is the fixture's whole source; it never returns `ok`.
"""

import encodings.idna  # noqa: F401 (bundled so getaddrinfo can encode host names)
import os
import socket

from wit_world import exports
from componentize_py_types import Err
from wit_world.imports import host, types

# Names of the probes, in report order (host tests may match on them).
PROBES = (
    "read-file /etc/passwd",
    "list-dir /",
    "write-file /tmp/distlog-sandbox-probe",
    "tcp-connect 127.0.0.1:9",
    "udp-send 127.0.0.1:9",
    "dns-lookup localhost",
    "environment",
    "stdout",
)


def _error(error):
    return f"{type(error).__name__}: {error}"


def _read_file():
    with open("/etc/passwd", "rb") as f:
        data = f.read(64)
    return f"read {len(data)} bytes"


def _list_dir():
    return f"listed {len(os.listdir('/'))} entries"


def _write_file():
    with open("/tmp/distlog-sandbox-probe", "wb") as f:
        f.write(b"escaped")
    return "wrote 7 bytes"


def _tcp_connect():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", 9))
        except (ConnectionRefusedError, TimeoutError) as error:
            # Refused or timed out means the packet reached a network stack.
            return f"reached the network ({_error(error)})"
        return "connected"
    finally:
        sock.close()


def _udp_send():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent = sock.sendto(b"probe", ("127.0.0.1", 9))
        return f"sent {sent} bytes"
    finally:
        sock.close()


def _dns_lookup():
    return f"resolved to {socket.getaddrinfo('localhost', 9)[0][4]}"


def _environment():
    names = sorted(os.environ)
    if not names:
        raise LookupError("no variables visible")
    return f"{len(names)} variables visible: {', '.join(names[:10])}"


def _stdout():
    # Not a leak by itself: the host may route stdout to its log. Reported so
    # a test can see where it went; a write that fails counts as denied.
    print("sandbox-probe: stdout line", flush=True)
    return "write accepted (the host routes or discards it)"


_CHECKS = (
    _read_file,
    _list_dir,
    _write_file,
    _tcp_connect,
    _udp_send,
    _dns_lookup,
    _environment,
    _stdout,
)


def report():
    """Runs every probe; returns the report (one line per probe)."""
    lines = []
    for name, check in zip(PROBES, _CHECKS):
        try:
            outcome = check()
        except BaseException as error:  # every failure is a denial
            lines.append(f"DENIED  {name}: {_error(error)}")
        else:
            verdict = "INFO   " if name == "stdout" else "ALLOWED"
            lines.append(f"{verdict} {name}: {outcome}")
    try:
        import time
        lines.append(f"INFO    clock: wall clock reads {int(time.time() * 1000)} ms")
    except BaseException as error:
        lines.append(f"INFO    clock: {_error(error)}")
    try:
        lines.append(f"INFO    random: {len(os.urandom(8))} bytes")
    except BaseException as error:
        lines.append(f"INFO    random: {_error(error)}")
    return "sandbox-probe report\n" + "\n".join(lines)


def _fail():
    text = report()
    try:
        host.log(types.Level.INFO, text)
    except BaseException:
        pass
    raise Err(text)


class Codec(exports.Codec):
    def init(self, params):
        _fail()

    def compress(self, input):
        _fail()

    def decompress(self, input, expected_size):
        _fail()
