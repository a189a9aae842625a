"""ConfigWatch: which of the running config's files changed, looked at only while an instance waits."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from magnetd import config
from magnetd.service.filewatch import ConfigWatch, FileStamps, config_files


def setup(tmp_path: Path) -> config.Config:
    (tmp_path / "pw").write_text("old-password")
    (tmp_path / "other.pw").write_text("other-password")
    data = {
        "folders": {"inbox": "./in", "sent": "./sent", "failed": "./failed"},
        "instances": [
            {"name": "a", "url": "http://a/", "username": "u", "password_file": "./pw"},
            {"name": "b", "url": "http://b/", "username": "u", "password_file": "./other.pw"},
            {"name": "c", "url": "http://c/", "username": "u", "password_env": "C_PW"},
        ],
    }
    path = tmp_path / "magnetd.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return config.load(path, {"C_PW": "env-password"})


def test_config_files_are_the_config_and_its_password_files(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    assert config_files(cfg) == [tmp_path / "magnetd.yaml", tmp_path / "pw", tmp_path / "other.pw"]


def test_in_place_writes_renames_and_removals_are_changes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("same size")
    stamps = FileStamps.of([path])
    assert stamps.changed([path]) == []
    os.utime(path, ns=(1, 1))  # same size and inode, other time
    assert stamps.changed([path]) == [path]
    stamps = FileStamps.of([path])
    new = tmp_path / "f.new"
    new.write_text("same size")
    os.utime(new, ns=(1, 1))
    new.replace(path)  # an editor's save: a new inode, same time and size
    assert stamps.changed([path]) == [path]
    stamps = FileStamps.of([path])
    path.unlink()
    assert stamps.changed([path]) == [path]
    assert stamps.changed([tmp_path / "never-known"]) == []


def test_only_while_waiting_only_that_instances_file_and_at_most_every_second(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    a, b, c = cfg.instances
    watch = ConfigWatch(cfg, every=1.0)
    (tmp_path / "other.pw").write_text("new other password")
    assert watch.changed(cfg, [], now=100.0) == []  # nobody waits: nothing looked at
    assert watch.changed(cfg, [a, c], now=101.0) == []  # b's file is not a's
    (tmp_path / "pw").write_text("new password")
    assert watch.changed(cfg, [a], now=101.5) == [], "at most once a second"
    assert watch.changed(cfg, [a], now=102.0) == [str(tmp_path / "pw")]
    assert watch.changed(cfg, [b], now=103.0) == [str(tmp_path / "other.pw")]


def test_a_refused_reload_keeps_watching_and_a_second_save_is_seen(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    watch = ConfigWatch(cfg, every=0.0)
    good = cfg.path.read_text()
    cfg.path.write_text(good + "probe_intervl: 1\n")  # a save with a typo
    assert watch.changed(cfg, cfg.instances, now=1.0) == [str(cfg.path)]
    watch.reading()
    watch.read(None)  # refused: the running config stays
    assert watch.changed(cfg, cfg.instances, now=2.0) == [], "the same bad save is not retried"
    cfg.path.write_text(good)  # the second save
    assert watch.changed(cfg, cfg.instances, now=3.0) == [str(cfg.path)]
    watch.reading()
    new = config.load(cfg.path, {"C_PW": "env-password"})
    watch.read(new)
    assert watch.changed(new, new.instances, now=4.0) == []


def test_a_save_while_the_reload_reads_is_seen_next_time(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    watch = ConfigWatch(cfg, every=0.0)
    watch.reading()
    cfg.path.write_text(cfg.path.read_text() + "# saved again\n")  # after the stamps, before or while reading
    watch.read(cfg)
    assert watch.changed(cfg, cfg.instances, now=1.0) == [str(cfg.path)]
