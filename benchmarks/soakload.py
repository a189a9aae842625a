"""The soak benchmark's load (a mixed stream of inbox files), its ledger, the accounting and the table.

Every dropped file has a unique name (``soak-<serial>-<kind>.<ext>``), so where it
ended up is found by name: in ``sent/``, in ``failed/``, or (for a partial file)
both; a second copy shows up as magnetd's clash name ``<stem>.<n>.<ext>``.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import fmt
from benchmarks.rig import Magnet, logged_in, magnets, rename_in, stage
from tests.daemon import drop
from tests.integration.conftest import torrent_file
from tests.qbt import Qbt

SUBFOLDER = "soak-sub"  # files dropped here are added with category "soak-sub"
KINDS = ("magnet", "multi", "json", "url", "torrent", "partial", "junk")
WEIGHTS = (30, 10, 8, 10, 10, 7, 25)
JUNK = ("bad_hash", "not_magnet", "binary", "empty", "bad_json", "bad_torrent", "bad_url")
CLASH = re.compile(r"^(?P<stem>.+)\.\d+(?P<ext>\.[^./]+)$")  # magnetd's x.2.magnet on a name clash
ERROR_SUFFIX = ".error.json"
HASHES_PER_QUERY = 500
SEVERAL, NONE = "files_with_several_canonical_events", "files_without_canonical_event"
EVENTS = (
    "file_sent",
    "file_partial",
    "file_failed",
    "daemon_started",
    "daemon_stopped",
    "config_reloaded",
    "config_reload_failed",
    "magnets_readded",
    "magnets_lost",
    "recheck_failed",
    "batch_failover",
    "files_held",
    "file_changed",
    "file_move_failed",
    "batch_error",
    "loop_error",
    "watcher_died",
    "prober_died",
    "daemon_failed",
    "vpn_status_changed",
    "instance_status_changed",
)
CANONICAL = ("file_sent", "file_partial", "file_failed")
MUST_BE_ZERO = ("lost", "duplicates", "junk_sent", "good_failed", "decoys_added", "missing_files")


@dataclass(frozen=True)
class Dropped:
    """One file put into the inbox."""

    path: str  # relative to the inbox, unique
    kind: str  # one of KINDS
    variant: str  # for junk: what is wrong with it
    hashes: tuple[str, ...]  # the valid infohashes in it (lowercase hex)
    decoys: tuple[str, ...]  # well-formed infohashes inside junk: must never reach qBittorrent
    in_place: bool  # written under its final name instead of renamed in


def write_in_place(target: Path, data: bytes) -> None:
    """Write ``data`` under its final name in two chunks, as a slow producer does."""
    target.parent.mkdir(parents=True, exist_ok=True)
    half = len(data) // 2
    with open(target, "wb") as handle:
        handle.write(data[:half])
        handle.flush()
        time.sleep(0.01)
        handle.write(data[half:])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _bad_lines(name: str) -> list[str]:
    return [
        f"magnet:?xt=urn:btih:{secrets.token_hex(20)[:39]}&dn={name}-short",
        f"https://example.invalid/{name}",
    ]


class Load:
    """Drops files into ``inbox`` and keeps the ledger; safe to call from several threads."""

    def __init__(self, inbox: Path, seed: int, in_place: float = 0.2, subfolder: float = 0.1) -> None:
        self.inbox = inbox
        self.rng = random.Random(seed)
        self.in_place = in_place
        self.subfolder = subfolder
        self.ledger: list[Dropped] = []
        self._lock = threading.Lock()

    def one(self, kind: str | None = None) -> Dropped:
        """Drop one file of ``kind`` (random by WEIGHTS if None)."""
        with self._lock:
            kind = kind or self.rng.choices(KINDS, WEIGHTS)[0]
            name = f"soak-{len(self.ledger) + 1:06d}-{kind}"
            ext, data, hashes, variant, decoys = self._content(kind, name)
            sub = SUBFOLDER if self.rng.random() < self.subfolder else ""
            in_place = self.rng.random() < self.in_place
            if in_place:
                write_in_place(self.inbox / sub / (name + ext), data)
            else:
                drop(self.inbox / sub, name + ext, data)
            item = Dropped(
                f"{sub}/{name}{ext}" if sub else name + ext, kind, variant, hashes, decoys, in_place
            )
            self.ledger.append(item)
            return item

    def burst(self, count: int) -> list[Dropped]:
        """``count`` single ``.magnet`` files staged under hidden names, then renamed in back to back."""
        with self._lock:
            first = len(self.ledger) + 1
            items = [Magnet(f"soak-{first + i:06d}-burst", secrets.token_hex(20)) for i in range(count)]
            stage(self.inbox, items)
            rename_in(self.inbox, self.inbox, items)
            dropped = [Dropped(i.file_name, "burst", "", (i.infohash,), (), False) for i in items]
            self.ledger += dropped
            return dropped

    def snapshot(self) -> list[Dropped]:
        with self._lock:
            return list(self.ledger)

    def _content(self, kind: str, name: str) -> tuple[str, bytes, tuple[str, ...], str, tuple[str, ...]]:
        """(extension, bytes, valid hashes, variant, decoys) for a new file."""
        rng = self.rng
        if kind == "junk":
            return self._junk(rng.choice(JUNK), name)
        if kind == "torrent":
            data, infohash = torrent_file(name)
            return ".torrent", data, (infohash,), "", ()
        if kind in ("magnet", "url"):
            item = Magnet(name, secrets.token_hex(20))
            if kind == "url":
                return ".url", f"[InternetShortcut]\r\nURL={item.uri}\r\n".encode(), (item.infohash,), "", ()
            newline = "\n" if rng.random() < 0.5 else ""  # Sonarr/Radarr write none
            return ".magnet", (item.uri + newline).encode(), (item.infohash,), "", ()
        items = magnets(name, {"multi": rng.randint(2, 20), "json": rng.randint(1, 40)}.get(kind, 5))
        if kind == "json":
            doc = {"saved_at": _now(), "reason": "soak", "magnets": [m.uri for m in items], "tags": ["soak"]}
            return ".json", json.dumps(doc).encode(), tuple(m.infohash for m in items), "", ()
        if kind == "partial":
            items = items[: rng.randint(1, 5)]
            lines = [m.uri for m in items] + _bad_lines(name)[: rng.randint(1, 2)]
            rng.shuffle(lines)
        else:
            lines = [m.infohash if rng.random() < 0.3 else m.uri for m in items]
            lines[1:1] = ["", f"# {name}: several magnets, one a line"]
        return ".magnet", "\n".join(lines).encode() + b"\n", tuple(m.infohash for m in items), "", ()

    def _junk(self, variant: str, name: str) -> tuple[str, bytes, tuple[str, ...], str, tuple[str, ...]]:
        decoy = secrets.token_hex(20)
        found: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
            "bad_hash": (".magnet", _bad_lines(name)[0].encode(), ()),
            "not_magnet": (".magnet", f"https://example.invalid/{name}.torrent\n".encode(), ()),
            "binary": (".magnet", b"\x00\x01\x02magnet:?xt=urn:btih:" + decoy.encode(), (decoy,)),
            "empty": (".magnet", b"", ()),
            "bad_json": (".json", f'{{"magnets": ["magnet:?xt=urn:btih:{decoy}"'.encode(), (decoy,)),
            "bad_torrent": (".torrent", os.urandom(self.rng.randint(16, 4096)), ()),
            "bad_url": (".url", b"[InternetShortcut]\r\nURL=https://example.invalid/\r\n", ()),
        }
        ext, data, decoys = found[variant]
        return ext, data, (), variant, decoys


def listed(server: Qbt, hashes: list[str]) -> set[str]:
    """Which of ``hashes`` ``server`` lists (``torrents/info``, a bounded number of hashes a call)."""
    api = logged_in(server)
    found: set[str] = set()
    for start in range(0, len(hashes), HASHES_PER_QUERY):
        chunk = "|".join(hashes[start : start + HASHES_PER_QUERY])
        found |= {str(t["hash"]) for t in api.torrents(hashes=chunk)}
    return found


def visible_files(folder: Path) -> list[str]:
    """Files below ``folder`` that magnetd would read (no hidden names or hidden folders)."""
    if not folder.exists():
        return []
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.append(str(rel))
    return sorted(found)


def places(folder: Path, known: set[str]) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Where each known file is below ``folder`` (its own name or a clash copy).

    Returns (ledger path → files holding it, files matching no ledger entry,
    error records without their file).
    """
    found: dict[str, list[str]] = {}
    strangers: list[str] = []
    records: list[str] = []
    for rel in visible_files(folder):
        if rel.endswith(ERROR_SUFFIX):
            records.append(rel)
            continue
        head, _, base = rel.rpartition("/")
        clash = CLASH.match(base)
        prefix = f"{head}/" if head else ""
        if rel in known:
            found.setdefault(rel, []).append(rel)
        elif clash and prefix + clash["stem"] + clash["ext"] in known:
            found.setdefault(prefix + clash["stem"] + clash["ext"], []).append(rel)
        else:
            strangers.append(rel)
    files = {name for names in found.values() for name in names} | set(strangers)
    orphans = [r for r in records if r.removesuffix(ERROR_SUFFIX) not in files]
    return found, strangers, orphans


def account(ledger: list[Dropped], inbox: Path, sent: Path, failed: Path, listed: set[str]) -> dict[str, Any]:
    """Where every dropped file and magnet ended up, and every rule it broke."""
    known = {item.path for item in ledger}
    in_sent, strangers_sent, _ = places(sent, known)
    in_failed, strangers_failed, orphans = places(failed, known)
    waiting = set(visible_files(inbox))
    partial_kind = {item.path for item in ledger if item.kind == "partial"}

    def dup(path: str) -> bool:
        both = path in in_sent and path in in_failed and path not in partial_kind
        return len(in_sent.get(path, [])) > 1 or len(in_failed.get(path, [])) > 1 or both

    def good_lines_failed(item: Dropped) -> bool:
        copies = in_failed.get(item.path, [])
        text = " ".join((failed / c).read_text(errors="replace") for c in copies)
        return any(h in text for h in item.hashes)

    lost = [(item.path, h) for item in ledger for h in item.hashes if h not in listed]
    outcome = Counter(
        "partial"
        if p in in_sent and p in in_failed
        else "sent"
        if p in in_sent
        else "failed"
        if p in in_failed
        else "inbox"
        if p in waiting
        else "missing"
        for p in known
    )
    good = [i for i in ledger if i.kind not in ("junk", "partial")]
    return {
        "dropped": len(ledger),
        "dropped_by_kind": dict(Counter(i.kind for i in ledger)),
        "junk_by_variant": dict(Counter(i.variant for i in ledger if i.kind == "junk")),
        "written_in_place": sum(i.in_place for i in ledger),
        "in_subfolder": sum(i.path.startswith(SUBFOLDER + "/") for i in ledger),
        "magnets": sum(len(i.hashes) for i in ledger),
        "outcomes": dict(outcome),
        "lost": [{"file": p, "infohash": h} for p, h in lost],
        "duplicates": {p: in_sent.get(p, []) + in_failed.get(p, []) for p in sorted(known) if dup(p)},
        "junk_sent": sorted(i.path for i in ledger if i.kind == "junk" and i.path in in_sent),
        "good_failed": sorted(i.path for i in good if i.path in in_failed)
        + sorted(i.path for i in ledger if i.kind == "partial" and good_lines_failed(i)),
        "partial_not_split": sorted(p for p in partial_kind if not (p in in_sent and p in in_failed)),
        "decoys_added": sorted(h for i in ledger for h in i.decoys if h in listed),
        "missing_files": sorted(
            p for p in known if p not in in_sent and p not in in_failed and p not in waiting
        ),
        "left_in_inbox": sorted(waiting),
        "strangers": strangers_sent + [f"failed/{s}" for s in strangers_failed],
        "orphan_error_records": orphans,
        "failed_without_record": sorted(
            c for copies in in_failed.values() for c in copies if not (failed / (c + ERROR_SUFFIX)).exists()
        ),
    }


def processes(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per daemon process: its first and last sample and its peaks.

    A process starts at its sample tagged ``start``/``restart`` (taken once ``status --json``
    says it runs); samples taken earlier, while Python was still importing, are left out.
    """
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for sample in series:
        by_pid.setdefault(sample["pid"], []).append(sample)
    for pid, samples in by_pid.items():
        tagged = [i for i, s in enumerate(samples) if s["tag"] in ("start", "restart")]
        by_pid[pid] = samples[tagged[0] :] if tagged else samples
    return [
        {
            "pid": pid,
            "start": samples[0],
            "end": samples[-1],
            "max_rss_mb": max(s["rss_mb"] for s in samples),
            "max_fds": max(s["fds"] for s in samples),
            "max_threads": max(s["threads"] for s in samples),
        }
        for pid, samples in by_pid.items()
    ]


def evidence(log: str, needles: list[str], most: int = 40) -> list[str]:
    """The daemon's log lines naming any of ``needles`` (a file or an infohash)."""
    return [line for line in log.splitlines() if any(n in line for n in needles)][:most]


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list | dict) else int(value)


def table(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for people."""
    c = data["checks"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(c["dropped_by_kind"].items()))
    out = c["outcomes"]
    rows = [
        ("duration of the stream", f"{data['seconds']:.0f} s; drain afterwards {fmt(data['drain_s'])} s"),
        ("files dropped", f"{c['dropped']} ({kinds})"),
        ("  written in place / in a sub-folder", f"{c['written_in_place']} / {c['in_subfolder']}"),
        ("  junk by variant", ", ".join(f"{k} {n}" for k, n in sorted(c["junk_by_variant"].items()))),
        ("valid magnets (infohashes)", str(c["magnets"])),
        (
            "files sent / failed / partial",
            f"{out.get('sent', 0)} / {out.get('failed', 0)} / {out.get('partial', 0)}",
        ),
        ("torrents in primary / fallback", f"{data['torrents']['primary']} / {data['torrents']['fallback']}"),
    ]
    rows += [(f"{key.replace('_', ' ')} (must be 0)", str(_count(c[key]))) for key in MUST_BE_ZERO]
    rows += [
        (
            "left in inbox / orphan .error.json",
            f"{len(c['left_in_inbox'])} / {len(c['orphan_error_records'])}",
        ),
        ("files with 2+ / no canonical event", f"{len(data[SEVERAL])} / {len(data[NONE])}"),
        ("daemon exit code at the end / tracebacks", f"{data['daemon_exit_code']} / {data['tracebacks']}"),
    ]
    for index, proc in enumerate(data["processes"], 1):
        s, e = proc["start"], proc["end"]
        rows.append(
            (
                f"daemon process {index} (pid {proc['pid']}), t {s['t']}→{e['t']} s",
                f"RSS {s['rss_mb']:.1f}→{e['rss_mb']:.1f} MiB (max {proc['max_rss_mb']:.1f}), "
                f"fds {s['fds']}→{e['fds']}, threads {s['threads']}→{e['threads']}",
            )
        )
    events = data["events"]
    rows.append(("daemon events", ", ".join(f"{k} {n}" for k, n in events.items() if n)))
    return rows


def failures(data: dict[str, Any]) -> list[str]:
    """Every must-be-zero check that is not, and every error of the run."""
    found = [f"{key}: {_count(data['checks'][key])}" for key in MUST_BE_ZERO if _count(data["checks"][key])]
    return found + [str(error) for error in data["errors"]]
