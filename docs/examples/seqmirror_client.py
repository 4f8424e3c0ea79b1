#!/usr/bin/env python3
"""A minimal seqmirror client, written from docs/protocol.md alone.

Python 3.11 standard library only. Usage:

    seqmirror_client.py status ROOT          # JSON status of an export root
    seqmirror_client.py check-manifest FILE  # validate a manifest fully
    seqmirror_client.py verify ROOT [N]      # re-hash snapshot N (default: current)

Exit codes follow seqmirror's: 0 success, 1 failure or (verify) differences
found, 2 bad arguments, 7 corrupt data (seq file, manifest, current symlink).
Paths are handled as bytes throughout; they are printed in the manifest's
%XX escaping so that any name prints unambiguously.
"""
import datetime
import hashlib
import json
import os
import re
import stat
import struct
import sys
import types

# ---------------------------------------------------------------- XXH64 ----
# The public XXH64 algorithm (https://github.com/Cyan4973/xxHash), seed 0.
_M = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P4, P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, lane):
    return _rotl((acc + lane * P2) & _M, 31) * P1 & _M


class XXH64:
    """Streaming XXH64: update(bytes) any number of times, then intdigest()."""

    def __init__(self, seed=0):
        self.v = [(seed + P1 + P2) & _M, (seed + P2) & _M, seed, (seed - P1) & _M]
        self.seed, self.total, self.buf = seed, 0, b""

    def update(self, data):
        self.total += len(data)
        data = self.buf + data
        n = len(data) - len(data) % 32
        v1, v2, v3, v4 = self.v
        for a, b, c, d in struct.iter_unpack("<4Q", memoryview(data)[:n]):
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
        self.v, self.buf = [v1, v2, v3, v4], data[n:]

    def intdigest(self):
        if self.total >= 32:
            v1, v2, v3, v4 = self.v
            h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
            for v in self.v:
                h = ((h ^ _round(0, v)) * P1 + P4) & _M
        else:
            h = (self.seed + P5) & _M
        h = (h + self.total) & _M
        buf, i = self.buf, 0
        while i + 8 <= len(buf):
            (k,) = struct.unpack_from("<Q", buf, i)
            h = (_rotl(h ^ _round(0, k), 27) * P1 + P4) & _M
            i += 8
        if i + 4 <= len(buf):
            (k,) = struct.unpack_from("<I", buf, i)
            h = (_rotl(h ^ (k * P1 & _M), 23) * P2 + P3) & _M
            i += 4
        for byte in buf[i:]:
            h = _rotl(h ^ (byte * P5 & _M), 11) * P1 & _M
        h ^= h >> 33
        h = h * P2 & _M
        h ^= h >> 29
        h = h * P3 & _M
        return h ^ (h >> 32)

    def hexdigest(self):
        return "%016x" % self.intdigest()


def xxh64_hex(data):
    h = XXH64()
    h.update(data)
    return h.hexdigest()


# --------------------------------------------------------------- errors ----
class Corrupt(Exception):  # corrupt or hostile data: exit code 7
    pass


class Failure(Exception):  # any other failure: exit code 1
    pass


# ------------------------------------------------------- numbers, seq files ----
_DEC = re.compile(rb"(0|[1-9][0-9]*)\Z")
_U64_MAX = (1 << 64) - 1


def parse_uint(b, what, limit=_U64_MAX):
    if not _DEC.match(b) or int(b) > limit:
        raise Corrupt("%s: not a canonical decimal number <= %d: %r" % (what, limit, b))
    return int(b)


def read_seq(path):
    """Section 2: one canonical decimal number and exactly one newline.
    A missing seq file (or seq/ directory) reads as 0."""
    try:
        with open(path, "rb") as f:
            data = f.read(64)
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise Failure("read %s: %s" % (path, e))
    if not data.endswith(b"\n"):
        raise Corrupt("%s: corrupt seq file %r: want one number and a newline" % (path, data))
    return parse_uint(data[:-1], "%s: corrupt seq file" % path)


# ------------------------------------------------------------- escaping ----
def _plain(byte):
    return 0x21 <= byte <= 0x7E and byte != 0x25  # printed as is; all else is %XX


def escape(raw):
    return b"".join(bytes([c]) if _plain(c) else b"%%%02X" % c for c in raw)


def unescape(field, what):
    out, i = bytearray(), 0
    while i < len(field):
        c = field[i]
        if c == 0x25:
            hx = field[i + 1:i + 3]
            if not re.fullmatch(rb"[0-9A-F]{2}", hx):
                raise Corrupt("%s: bad escape %r (two uppercase hex digits)" % (what, field[i:i + 3]))
            c = int(hx, 16)
            if _plain(c):
                raise Corrupt("%s: byte %r must not be escaped" % (what, bytes([c])))
            i += 3
        elif _plain(c):
            i += 1
        else:
            raise Corrupt("%s: byte 0x%02x must be escaped" % (what, c))
        out.append(c)
    return bytes(out)


def show(raw):
    return escape(raw).decode("ascii")


# ------------------------------------------------------------- manifest ----
MAX_FILE_SIZE = 1 << 40
_MODE = re.compile(rb"0[0-7]{3}\Z")
_MTIME = re.compile(rb"(0|-?[1-9][0-9]*)\Z")
_HASH = re.compile(rb"[0-9a-f]{16}\Z")
_DIGEST = re.compile(rb"[0-9a-f]{64}\Z")
_FOOTER = re.compile(rb"end (0|[1-9][0-9]*) ([0-9a-f]{16})\Z")


def clean_path(p):
    return (p != b"" and b"\0" not in p
            and all(c not in (b"", b".", b"..") for c in p.split(b"/")))


def parse_record(line, lineno, version=2):
    where = "line %d" % lineno
    fields = line.split(b" ")
    if not fields or fields[0] not in (b"f", b"d", b"l") or len(fields) != (7 if fields[0] == b"l" else 6):
        raise Corrupt("%s: malformed record %r" % (where, line))
    typ, mode, size, mtime, hsh, path = fields[:6]
    if not _MODE.match(mode):
        raise Corrupt("%s: bad mode %r" % (where, mode))
    if not _MTIME.match(mtime) or not -(1 << 63) <= int(mtime) < (1 << 63):
        raise Corrupt("%s: bad mtime %r" % (where, mtime))
    r = types.SimpleNamespace(type=typ.decode(), mode=int(mode, 8), mtime=int(mtime),
                              size=parse_uint(size, where + ": size"), hash=hsh.decode(),
                              path=unescape(path, where + ": path"), target=None)
    if not clean_path(r.path):
        raise Corrupt("%s: path %r is not clean" % (where, path))
    if r.type == "f":
        # Version 2: the SHA-256 of the content, 64 lowercase hex digits,
        # never all zeros; version 1: the xxhash64, 16.
        if not (_DIGEST if version == 2 else _HASH).match(hsh) or hsh == b"0" * 64:
            raise Corrupt("%s: bad hash %r" % (where, hsh))
        if r.size > MAX_FILE_SIZE:
            raise Corrupt("%s: file size %d exceeds 2^40" % (where, r.size))
    elif hsh != b"-":
        raise Corrupt("%s: hash of a %s record must be '-'" % (where, r.type))
    if r.type == "d" and r.size != 0:
        raise Corrupt("%s: directory size must be 0" % where)
    if r.type == "l":
        r.target = unescape(fields[6], where + ": target")
        if r.mtime != 0:  # the mode is written 0777 and ignored, as seqmirror does
            raise Corrupt("%s: symlink mtime must be 0" % where)
        if r.target == b"" or b"\0" in r.target or r.size != len(r.target):
            raise Corrupt("%s: symlink size %d is not the length of its target" % (where, r.size))
    return r


def parse_manifest(data, expect_n=None):
    """Validate a whole manifest (section 3) before returning any record.
    Returns (N, [Record...]) in manifest (canonical) order."""
    if not data.endswith(b"\n"):
        raise Corrupt("manifest does not end with a newline (truncated?)")
    lines = data[:-1].split(b"\n")
    if len(lines) < 3:
        raise Corrupt("manifest too short: want header, snapshot line and footer")
    version = {b"seqmirror-manifest 1": 1, b"seqmirror-manifest 2": 2}.get(lines[0])
    if version is None:
        raise Corrupt("bad header %r (want 'seqmirror-manifest 2' or 1)" % lines[0][:40])
    m = re.fullmatch(rb"snapshot (.*)", lines[1], re.S)
    n = parse_uint(m.group(1), "snapshot line") if m else 0
    if n < 1:
        raise Corrupt("bad snapshot line %r" % lines[1][:40])
    if expect_n is not None and n != expect_n:
        raise Corrupt("manifest records snapshot %d, its name says %d" % (n, expect_n))
    footer = _FOOTER.match(lines[-1])
    if not footer:
        raise Corrupt("bad footer %r" % lines[-1][:60])
    body_len = len(data) - len(lines[-1]) - 1
    got = xxh64_hex(data[:body_len])
    if got != footer.group(2).decode():
        raise Corrupt("checksum mismatch: footer says %s, content hashes to %s"
                      % (footer.group(2).decode(), got))
    records, dirs, prev = [], set(), None
    for lineno, line in enumerate(lines[2:-1], start=3):
        r = parse_record(line, lineno, version)
        key = r.path.replace(b"/", b"\0")
        if prev is not None and key <= prev:
            raise Corrupt("line %d: %s is not after the previous path in canonical order"
                          % (lineno, show(r.path)))
        prev = key
        parent = r.path.rpartition(b"/")[0]
        if parent and parent not in dirs:
            raise Corrupt("line %d: parent of %s is not an earlier 'd' record" % (lineno, show(r.path)))
        if r.type == "d":
            dirs.add(r.path)
        records.append(r)
    count = int(footer.group(1))
    if count != len(records):
        raise Corrupt("footer counts %d records, manifest has %d" % (count, len(records)))
    return n, records


def read_manifest(path, expect_n=None):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Failure("read manifest: %s" % e)
    return parse_manifest(data, expect_n)


# ---------------------------------------------------------- export root ----
def snapshot_number(name):
    """N >= 1 in canonical decimal, at most 2^64-1; else None."""
    ok = re.fullmatch(r"[1-9][0-9]*", name) and int(name) <= _U64_MAX
    return int(name) if ok else None


def complete_snapshots(root):
    d = os.path.join(root, "snapshots")
    try:
        names = set(os.listdir(d))
    except OSError as e:
        raise Failure("not a seqmirror export root: %s: %s" % (root, e))
    out = []
    for name in names:
        n = snapshot_number(name)
        if n and name + ".manifest" in names and os.path.isdir(os.path.join(d, name)) \
                and not os.path.islink(os.path.join(d, name)):
            out.append(n)
    return sorted(out)


def resolve_current(root):
    """Returns (N, problem): N = 0 and problem = None when current is missing."""
    cur = os.path.join(root, "current")
    try:
        target = os.readlink(cur)
    except FileNotFoundError:
        return 0, None
    except OSError:
        return 0, "bad current symlink: %s is not a symlink" % cur
    n = snapshot_number(target[len("snapshots/"):]) if target.startswith("snapshots/") else None
    if n is None:
        return 0, "bad current symlink: target %r, want snapshots/N" % target
    return n, None


def rfc3339(ns):
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    frac = ("." + ("%09d" % (ns % 10**9)).rstrip("0")) if ns % 10**9 else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def status(root):
    """Section 5/6: the state of ROOT from its files alone."""
    snaps = complete_snapshots(root)
    begin = read_seq(os.path.join(root, "seq", "begin"))
    end = read_seq(os.path.join(root, "seq", "end"))
    n, problem = resolve_current(root)
    st = {"version": 1, "root": root, "snapshot": n, "begin": begin, "end": end,
          "state": "fresh", "snapshots": snaps}
    if problem is None and n and n not in snaps:
        problem = "current points to snapshot %d, which is not complete" % n
    if problem:
        st["state"] = "torn"
    elif n == 0:
        st["state"] = "empty"
    elif begin != end:
        st["state"] = "updating"
    if os.path.islink(os.path.join(root, "current")) or problem:
        st["updated"] = rfc3339(os.lstat(os.path.join(root, "current")).st_mtime_ns)
    if problem:
        st["problem"] = problem
    return st


def hash_file(path, version=2):
    """The content hash a record of the version gives the file: SHA-256
    (version 2) or xxhash64 (version 1), in lowercase hex."""
    h = hashlib.sha256() if version == 2 else XXH64()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(root, n=0):
    """Re-hash snapshot N (0: the served one) against its manifest.
    Returns a list of (escaped path, reason); empty when the tree matches."""
    if n == 0:
        n, problem = resolve_current(root)
        if problem or n == 0:
            raise Corrupt(problem or "nothing served: %s/current is missing" % root)
    _, records = read_manifest(os.path.join(root, "snapshots", "%d.manifest" % n), n)
    top = os.fsencode(os.path.join(root, "snapshots", str(n)))
    if not os.path.isdir(top):
        raise Failure("snapshot %d has no tree" % n)
    want = {r.path: r for r in records}
    problems = []

    def walk(rel):  # every entry on disk, in any order
        for e in os.scandir(os.path.join(top, rel) if rel else top):
            p = rel + b"/" + e.name if rel else e.name
            if p not in want:
                problems.append((p, "not in manifest"))
            else:
                yield p
                if e.is_dir(follow_symlinks=False) and want[p].type == "d":
                    yield from walk(p)

    seen = set(walk(b""))
    kinds = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l"}
    for r in records:
        if r.path not in seen:
            problems.append((r.path, "missing"))
            continue
        full = os.path.join(top, r.path)
        st = os.lstat(full)
        kind = kinds.get(stat.S_IFMT(st.st_mode), "other")
        if kind != r.type:
            problems.append((r.path, "type %s, manifest says %s" % (kind, r.type)))
        elif r.type == "l":
            if os.readlink(full) != r.target:
                problems.append((r.path, "symlink target %r, manifest says %r"
                                 % (show(os.readlink(full)), show(r.target))))
        elif stat.S_IMODE(st.st_mode) != r.mode:
            problems.append((r.path, "mode %04o, manifest says %04o" % (stat.S_IMODE(st.st_mode), r.mode)))
        elif r.type == "f":
            if st.st_size != r.size:
                problems.append((r.path, "size %d, manifest says %d" % (st.st_size, r.size)))
            elif st.st_mtime_ns != r.mtime:
                problems.append((r.path, "mtime %d, manifest says %d" % (st.st_mtime_ns, r.mtime)))
            elif hash_file(full, 2 if len(r.hash) == 64 else 1) != r.hash:
                problems.append((r.path, "content hash differs from the manifest's %s" % r.hash))
    problems.sort(key=lambda p: p[0].replace(b"/", b"\0"))
    return n, problems


# ------------------------------------------------------------------ CLI ----
USAGE = __doc__.split("Usage:")[1].split("Exit codes")[0]


def main(argv):
    if len(argv) < 2 or argv[0] not in ("status", "check-manifest", "verify") \
            or len(argv) > (3 if argv[0] == "verify" else 2):
        sys.stderr.write("usage:" + USAGE)
        return 2
    cmd, arg = argv[0], argv[1]
    try:
        if cmd == "status":
            print(json.dumps(status(arg), indent=2))
        elif cmd == "check-manifest":
            name = os.path.basename(arg)
            n = snapshot_number(name[:-9]) if name.endswith(".manifest") else None
            n, records = read_manifest(arg, n)
            print("manifest of snapshot %d OK: %d records" % (n, len(records)))
        else:
            want = 0
            if len(argv) == 3:
                want = snapshot_number(argv[2])
                if want is None:
                    sys.stderr.write("verify: N must be a snapshot number >= 1\n")
                    return 2
            n, problems = verify(arg, want)
            print(json.dumps({"snapshot": n, "ok": not problems,
                              "problems": [{"path": show(p), "reason": r} for p, r in problems]},
                             indent=2))
            return 1 if problems else 0
    except Corrupt as e:
        sys.stderr.write("%s: corrupt: %s\n" % (cmd, e))
        return 7
    except (Failure, OSError) as e:
        sys.stderr.write("%s: %s\n" % (cmd, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
