"""What one probe round costs on an instance holding 10,000 torrents: ``python -m benchmarks.probecost``.

As root, inside a private network namespace: one fresh qbittorrent-nox gets N
magnets (paused, as the other benchmarks add them) and ``--active`` of them
resumed (downloading metadata, which no peer can ever send here: active
downloads). Then, for each configuration, a worker process builds the real
prober from that configuration and runs ``Prober.round()`` ``--rounds`` times
after one unmeasured warm-up round (login, ``app/version``), timing each round
(wall clock) and qBittorrent's CPU time during it (every thread's
``/proc/PID/task/TID/schedstat``, nanoseconds; ``/proc/PID/stat`` totals as a
cross-check). The baseline is the prober before the several-instances feature
(``b20ec5a^``), unpacked with ``git archive`` and imported from there.

Free space is read at most once a minute, so configurations that read it are
measured twice: ``read`` rounds move the load clock on by 61 s before each round
(every round reads ``sync/maindata``), ``other`` rounds leave it (none does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.probes import cpu_seconds
from benchmarks.rig import Rig, enter_private_network, logged_in, machine, magnets

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
BASELINE = "b20ec5a^"
"""The commit whose prober is the baseline: the one before the several-instances feature."""
ADD_CHUNK = 1000  # magnets per torrents/add while filling the instance
SEND_ROUNDS = 5  # rounds reading the free space during which a verification is timed
FREE_ADVANCE = 61.0  # seconds the load clock moves before a "read" round: the free space is due again


@dataclass(frozen=True)
class Case:
    """One configuration measured: which code, which settings, whether the free space is due."""

    label: str
    code: str  # "baseline" or "current"
    settings: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)
    advance: float = 0.0


CASES = (
    Case("baseline (b20ec5a^), plain", "baseline"),
    Case("plain (no limits)", "current"),
    Case("max_active: 100", "current", instance={"max_active": 100}),
    Case("strategy least_active", "current", settings={"dispatch": {"strategy": "least_active"}}),
    Case("min_free_space, other minutes", "current", instance={"min_free_space": "1G"}),
    Case("min_free_space, read minute", "current", instance={"min_free_space": "1G"}, advance=FREE_ADVANCE),
    Case(
        "strategy most_free_space, other minutes",
        "current",
        settings={"dispatch": {"strategy": "most_free_space"}},
    ),
    Case(
        "strategy most_free_space, read minute",
        "current",
        settings={"dispatch": {"strategy": "most_free_space"}},
        advance=FREE_ADVANCE,
    ),
)


def schedstat_ns(pid: int) -> int:
    """Nanoseconds every current thread of ``pid`` has run on a CPU (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total


# the parent: one instance, filled once; a worker process per case


def fill(server_api: Any, count: int, active: int) -> list[str]:
    """Add ``count`` paused magnets and resume ``active`` of them; their infohashes."""
    items = magnets("probe", count)
    for start in range(0, count, ADD_CHUNK):
        urls = "\n".join(m.uri for m in items[start : start + ADD_CHUNK])
        server_api.request("POST", "torrents/add", data={"urls": urls, "paused": "true"})
    deadline = time.monotonic() + 120
    while len(server_api.torrents()) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"qBittorrent did not list all {count} magnets within 120 s")
        time.sleep(0.5)
    hashes = [m.infohash for m in items[:active]]
    if hashes:
        server_api.request("POST", "torrents/resume", data={"hashes": "|".join(hashes)})
        deadline = time.monotonic() + 30
        while any(t.get("state") == "pausedDL" for t in server_api.torrents(hashes="|".join(hashes))):
            if time.monotonic() > deadline:
                raise SystemExit(f"qBittorrent did not resume the {active} magnets within 30 s")
            time.sleep(0.2)
    return hashes


def unpack(rev: str, target: Path) -> Path:
    """``magnetd/`` of ``rev`` unpacked under ``target`` (a worker imports it from there)."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "magnetd"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def run_case(
    case: Case, url: str, password: str, pid: int, rounds: int, codes: dict[str, str], work: Path
) -> dict[str, Any]:
    """Run one case's worker process; its result."""
    out = work / f"{case.label.replace(' ', '_').replace(',', '').replace('(', '').replace(')', '')}.json"
    spec = {
        "code": codes[case.code],
        "baseline": case.code == "baseline",
        "url": url,
        "settings": case.settings,
        "instance": case.instance,
        "advance": case.advance,
        "rounds": rounds,
        "pid": pid,
        "work": str(work),
        "result": str(out),
    }
    env = {**os.environ, "MAGNETD_BENCH_PW": password}
    command = [sys.executable, "-m", "benchmarks.probecost", "--worker", json.dumps(spec)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=600)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def summary(label: str, result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    return {
        "case": label,
        "wall_ms_median": statistics.median(r["wall_ms"] for r in rounds),
        "wall_ms_max": max(r["wall_ms"] for r in rounds),
        "qbt_cpu_ms_median": statistics.median(r["qbt_cpu_ms"] for r in rounds),
        "qbt_cpu_ms_per_round_stat": result["qbt_stat_cpu_ms"] / len(rounds),
        "requests_per_round": result["requests_per_round"],
        "health": result["health"],
        "bytes_per_round": result["bytes_per_round"],
        "send_during_round_ms_median": statistics.median(result["send_during_round_ms"] or [0.0]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probecost", description=__doc__)
    parser.add_argument(
        "--torrents", type=int, default=10_000, help="magnets in the instance (default 10000)"
    )
    parser.add_argument("--active", type=int, default=50, help="of those, resumed (default 50)")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds per case (default 10)")
    parser.add_argument("--baseline", default=BASELINE, help=f"the baseline's commit (default {BASELINE})")
    parser.add_argument("--current", help="measure this commit's code instead of the working tree's")
    parser.add_argument("--only", action="append", help="run only cases whose label contains this")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for probecost.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    network = enter_private_network()
    root = Path(tempfile.mkdtemp(prefix="magnetd-probecost-"))
    codes = {"baseline": str(unpack(args.baseline, root / "baseline")), "current": ""}
    if args.current:
        codes["current"] = str(unpack(args.current, root / "current"))
    cases = [c for c in CASES if not args.only or any(o in c.label for o in args.only)]
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        rig = Rig(root)
        server = rig.qbt(stack, "probe")
        assert server.process is not None
        api = logged_in(server)
        started = time.monotonic()
        fill(api, args.torrents, args.active)
        print(f"filled {args.torrents} magnets ({args.active} resumed) in {time.monotonic() - started:.1f} s")
        states = Counter(str(t.get("state")) for t in api.torrents())
        print(f"states: {dict(states)}", flush=True)
        for case in cases:
            work = rig.folder("case")
            result = run_case(case, server.url, server.password, server.process.pid, args.rounds, codes, work)
            row = summary(case.label, result)
            results.append(row)
            print(
                f"{case.label:42s} wall {row['wall_ms_median']:8.1f} ms (max {row['wall_ms_max']:.1f})"
                f"  qBittorrent CPU {row['qbt_cpu_ms_median']:8.1f} ms"
                f" (stat {row['qbt_cpu_ms_per_round_stat']:.1f})  {row['health']}",
                f" {row['requests_per_round']}",
                f" send during: {row['send_during_round_ms_median']:.1f} ms",
                flush=True,
            )
    report = {
        "machine": machine(root, network),
        "torrents": args.torrents,
        "active": args.active,
        "states": dict(states),
        "rounds": args.rounds,
        "baseline": args.baseline,
        "current": args.current or "working tree",
        "cases": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probecost.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


# the worker: imports magnetd from the code asked for, builds the prober as the daemon does


def worker(spec: dict[str, Any]) -> int:
    if spec["code"]:
        sys.path.insert(0, spec["code"])  # ahead of the editable install's finder (a meta-path hook)
    import magnetd
    from magnetd import config as config_module
    from magnetd import logs

    where = Path(magnetd.__file__).resolve().parent.parent
    expected = Path(spec["code"]).resolve() if spec["code"] else ROOT
    if where != expected:
        raise SystemExit(f"imported magnetd from {where}, expected {expected}")
    logs.setup("json", "warning")
    work = Path(spec["work"])
    entry = {"name": "big", "url": spec["url"], "username": "admin", "password_env": "MAGNETD_BENCH_PW"}
    raw = {
        "folders": {"inbox": "inbox", "sent": "sent", "failed": "failed", "state": "state"},
        "probe_interval": 10,
        "instances": [{**entry, **spec["instance"]}],
        **spec["settings"],
    }
    for sub in ("inbox", "sent", "failed", "state"):
        (work / sub).mkdir(exist_ok=True)
    path = work / "magnetd.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = config_module.load(path, os.environ)
    clock = FakeClock()
    round_, client = build_prober(cfg, clock, baseline=spec["baseline"])
    tally = Tally(client)
    warm = round_()  # warm-up: login, app/version, the first free-space read
    pid = spec["pid"]
    rows = []
    health = warm
    tally.reset()
    stat_before = cpu_seconds(pid)
    for _ in range(spec["rounds"]):
        clock.now += spec["advance"]
        cpu0, wall0 = schedstat_ns(pid), time.perf_counter()
        health = round_()
        wall1, cpu1 = time.perf_counter(), schedstat_ns(pid)
        rows.append({"wall_ms": (wall1 - wall0) * 1000, "qbt_cpu_ms": (cpu1 - cpu0) / 1e6})
    stat_cpu = cpu_seconds(pid) - stat_before
    n = spec["rounds"]
    requests = {k: v / n for k, v in sorted(tally.requests.items())}
    answered = sum(tally.bytes.values()) / n
    during = sends_during_rounds(round_, client, clock, spec["advance"]) if spec["advance"] else []
    result = {
        "free_space_answers": tally.free_answers(),
        "send_during_round_ms": during,
        "health_after_warmup": warm,
        "health": health,
        "rounds": rows,
        "qbt_stat_cpu_ms": stat_cpu * 1000,
        "requests_per_round": requests,
        "bytes_per_round": answered,
    }
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def sends_during_rounds(
    round_: Callable[[], str], client: Any, clock: FakeClock, advance: float
) -> list[float]:
    """Milliseconds a verification (``torrents/info`` by hash, under the send lock) takes when it is
    asked 0.1 s into a round that reads the free space; one per round, SEND_ROUNDS rounds."""
    took = []
    for _ in range(SEND_ROUNDS):
        clock.now += advance
        prober = threading.Thread(target=round_)
        prober.start()
        time.sleep(0.1)
        begun = time.perf_counter()
        client.present({"0" * 40})
        took.append((time.perf_counter() - begun) * 1000)
        prober.join()
    return took


class FakeClock:
    """The load records' clock: moved on by hand, so the free space is due exactly when asked."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


class Tally:
    """Counts the requests a client sends, by path, and the bytes answered."""

    def __init__(self, client: Any) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.maindata: list[Any] = []  # the sync/maindata answers, read after the rounds
        sessions = [client._session] + [s for s in (getattr(client, "_side", None),) if s is not None]
        for session in sessions:
            self._wrap(session)

    def _wrap(self, session: Any) -> None:
        send: Callable[..., Any] = session.request

        def counted(method: str, url: str, **kwargs: Any) -> Any:
            response = send(method, url, **kwargs)
            path = url.split("/api/v2/", 1)[-1]
            form = kwargs.get("data") or {}
            key = f"{path}?filter={form['filter']}" if isinstance(form, dict) and "filter" in form else path
            self.requests[key] += 1
            self.bytes[key] += len(response.content)
            if path.startswith("sync/maindata"):
                self.maindata.append(response)
            return response

        session.request = counted

    def free_answers(self) -> list[int]:
        """The ``free_space_on_disk`` values qBittorrent answered."""
        return [r.json().get("server_state", {}).get("free_space_on_disk", -1) for r in self.maindata]

    def reset(self) -> None:
        self.requests.clear()
        self.bytes.clear()


def build_prober(cfg: Any, clock: FakeClock, *, baseline: bool) -> tuple[Callable[[], str], Any]:
    """The prober's ``round`` for ``cfg``, built as ``magnetd.service.parts`` builds it, and its client."""
    from magnetd.delivery.qbittorrent import Client
    from magnetd.health.prober import Prober
    from magnetd.health.state import Health

    inst = cfg.instances[0]
    client = Client(inst.url, inst.username, inst.password, verify=inst.verify_tls, timeout=60.0)
    clients = {inst.name: client}
    if baseline:
        health = Health(cfg.instances, cfg.vpn)
        prober = Prober(cfg.instances, clients, health, None, cfg.probe_interval)
    else:
        from magnetd.balance.load import Loads
        from magnetd.balance.router import Balance

        health = Health(cfg.instances, cfg.gates)
        balance = Balance(cfg, Loads((i.name for i in cfg.instances), clock))
        prober = Prober(
            cfg.instances,
            clients,
            health,
            None,
            cfg.probe_interval,
            balance=balance,
            recheck=cfg.recheck_interval,
        )

    def round_() -> str:
        prober.round()
        return str(health.summary())

    return round_, client


if __name__ == "__main__":
    raise SystemExit(main())
