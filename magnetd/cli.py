"""The ``magnetd`` command: the one place where errors become exit codes."""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from magnetd import __version__, logs
from magnetd import config as configuration
from magnetd.intake import links
from magnetd.intake.magnet import parse_link
from magnetd.model import ExitCode, Rejected
from magnetd.records import status
from magnetd.records.spool import count_files, drop_file, move_back

NOTIFY_TEST_TIMEOUT = 60.0  # seconds for every target, retries included (a webhook waits up to 10 s a try)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magnetd", description="Send magnet links dropped in an inbox folder to qBittorrent."
    )
    parser.add_argument("--version", action="version", version=f"magnetd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--config",
            "-c",
            type=Path,
            help="the config file (default: $MAGNETD_CONFIG, ./magnetd.yaml, then the system path)",
        )
        return sub

    run = command("run", "run in the foreground until SIGTERM/SIGINT")
    run.add_argument("--log-target", choices=logs.TARGETS, default="auto")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    command("check-config", "check the config; print every problem")
    show = command("status", "show what the daemon is doing")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    add = command("add", "drop magnet links, links to .torrent files, or files into the inbox")
    add.add_argument("links", nargs="+", metavar="MAGNET_OR_FILE")
    retry = command("retry", "move failed files back into the inbox")
    retry.add_argument("names", nargs="*", metavar="NAME", help="files in failed/ (default: all)")
    notify = command("notify", "send the event `test` to every notify target; print each result")
    notify.add_argument("--test", action="store_true", required=True, help="send the test event (required)")
    service = command("service", "install, remove, start or stop the Windows service (Windows only)")
    service.add_argument("action", choices=("install", "remove", "start", "stop"))
    service.add_argument(
        "--startup", choices=("auto", "manual"), default="auto", help="start type for install (default: auto)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or configuration.default_path()
    try:
        return _dispatch(args, path)
    except configuration.ConfigError as exc:
        print(f"magnetd: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except KeyboardInterrupt:
        return ExitCode.OK
    except OSError as exc:
        print(f"magnetd: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return ExitCode.ERROR


def _dispatch(args: argparse.Namespace, path: Path) -> int:
    if args.command == "service":  # --config as given: the service resolves its default itself
        return service(args.action, args.config, args.startup)
    if args.command == "check-config":
        cfg = configuration.load(path)
        for warning in cfg.warnings:
            print(f"warning: {warning}")
        names = ", ".join(i.name for i in cfg.instances)
        print(f"{cfg.path}: OK ({len(cfg.instances)} instance(s): {names}; inbox {cfg.folders.inbox})")
        return ExitCode.OK
    if args.command == "run":
        return run(configuration.load(path), args.log_target, args.log_level)
    if args.command == "notify":
        return notify_test(configuration.load(path))
    cfg = configuration.load(path, secrets=False)  # the other commands only touch the folders
    if args.command == "status":
        return show_status(cfg, args.json)
    if args.command == "add":
        return add(cfg, args.links)
    return retry(cfg, args.names)


def run(cfg: configuration.Config, target: str, level: str) -> int:
    """Run the daemon in the foreground; SIGTERM/SIGINT stop it, SIGHUP reloads."""
    from magnetd.service.supervisor import Supervisor

    logs.setup(target, level)
    logs.register_secrets(cfg.secrets())
    try:
        supervisor = Supervisor(cfg)
    except Exception as exc:
        logs.get(__name__).critical("daemon_failed", error=repr(exc), exc_info=exc)
        return ExitCode.ERROR
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.request_stop())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: supervisor.request_reload())
    try:
        return supervisor.run()
    except Exception as exc:
        logs.get(__name__).critical("daemon_failed", error=repr(exc), exc_info=exc)
        return ExitCode.ERROR


def notify_test(cfg: configuration.Config) -> int:
    """Send ``test`` to every target at once; exit 0 only if every one was delivered."""
    from magnetd.telemetry.events import Event, EventName
    from magnetd.telemetry.postman import Postman
    from magnetd.telemetry.targets import build

    if not cfg.notify.targets:
        print(f"magnetd: {cfg.path} has no notify targets", file=sys.stderr)
        return ExitCode.ERROR
    logs.setup("console", "warning")
    logs.register_secrets(cfg.secrets())
    postman = Postman([build(spec) for spec in cfg.notify.targets])
    message = f"A test from magnetd on {socket.gethostname()}: notifications reach this target."
    results = postman.deliver_now(
        Event(EventName.TEST, "magnetd: test", message), timeout=NOTIFY_TEST_TIMEOUT
    )
    postman.close(timeout=1.0)
    for name, result in results.items():
        word = "delivered" if result.delivered else "FAILED"
        print(f"{name:<16} {word:<10} {result.detail}".rstrip())
    return ExitCode.OK if all(r.delivered for r in results.values()) else ExitCode.ERROR


def service(action: str, config: Path | None, startup: str) -> int:
    """Install, remove, start or stop the Windows service (pywin32); Windows only."""
    if sys.platform != "win32":
        print("magnetd: 'magnetd service' is Windows-only; on Linux use the systemd unit", file=sys.stderr)
        return ExitCode.USAGE
    from magnetd.service import winservice

    return winservice.manage(action, config, startup)


def show_status(cfg: configuration.Config, as_json: bool) -> int:
    snapshot = status.read(cfg.folders.state)
    if snapshot is not None:  # the folders are the record: count them now, not when last written
        snapshot.update(sent=count_files(cfg.folders.sent), failed=count_files(cfg.folders.failed))
    if not as_json:
        print(status.render(snapshot), end="")
    elif snapshot is None:
        print(json.dumps({"running": False, "error": "no status snapshot yet"}))
    else:
        snapshot["running"] = status.is_running(snapshot)
        snapshot["stale"] = not snapshot["running"]
        print(json.dumps(snapshot, indent=2))
    return status.verdict(snapshot)


def add(cfg: configuration.Config, links: Sequence[str]) -> int:
    """Drop each magnet (as a ``.magnet`` file) or file into the inbox: temp name, then rename."""
    inbox = cfg.folders.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    code = ExitCode.OK
    for link in links:
        source = Path(link)
        try:
            if source.is_file():
                name, data = source.name, source.read_bytes()
            else:
                name, data = _link_file(link)
        except Rejected as exc:
            print(f"magnetd: not added: {exc.reason}: {exc.detail}", file=sys.stderr)
            code = ExitCode.ERROR
            continue
        print(drop_file(inbox, name, data))
    return code


def _link_file(link: str) -> tuple[str, bytes]:
    """The ``.magnet`` file for a magnet, a bare hash, or an http(s) link to a .torrent file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if links.is_link(link):
        if (problem := links.link_error(link)) is not None:
            raise problem
        digest = hashlib.sha1(link.strip().encode("utf-8")).hexdigest()[:12]
        return f"{stamp}-link-{digest}.magnet", (link.strip() + "\n").encode("utf-8")
    magnet = parse_link(link)
    return f"{stamp}-{magnet.torrent_id[:12]}.magnet", (magnet.uri + "\n").encode("utf-8")


def retry(cfg: configuration.Config, names: Sequence[str]) -> int:
    """Move files from ``failed/`` back into the inbox, dropping their ``.error.json``."""
    moved, missing = move_back(cfg.folders.failed, cfg.folders.inbox, names)
    for path in moved:
        print(path)
    for name in missing:
        print(f"magnetd: no failed file {cfg.folders.failed / name}", file=sys.stderr)
    return ExitCode.ERROR if missing else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
