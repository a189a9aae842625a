"""Add options: queue-file checks, layering, and the torrents/add form they become."""

from __future__ import annotations

import json
from pathlib import PurePath

import pytest

from magnetd.delivery.form import options_form
from magnetd.intake import items, options
from magnetd.model import NO_OPTIONS, AddOptions, Rejected

MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20


def queue(**keys: object) -> bytes:
    return json.dumps({"magnets": [MAGNET], **keys}).encode()


def test_a_queue_file_carries_every_option() -> None:
    item = items.parse_item(
        "q.json",
        queue(
            skip_checking=True,
            sequential=True,
            first_last_piece=False,
            content_layout="NoSubfolder",
            auto_tmm=True,
            rename="x",
            ratio_limit=2,
            seeding_time_limit=-1,
            up_limit=1024,
            dl_limit=0,
            stop_condition="MetadataReceived",
            tags="a, b",
        ),
    )
    assert item.options == AddOptions(
        tags=("a", "b"),
        skip_checking=True,
        sequential=True,
        first_last_piece=False,
        content_layout="NoSubfolder",
        auto_tmm=True,
        rename="x",
        ratio_limit=2.0,
        seeding_time_limit=-1,
        up_limit=1024,
        dl_limit=0,
        stop_condition="MetadataReceived",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("content_layout", "Flat"),
        ("stop_condition", "Never"),
        ("ratio_limit", -3),
        ("ratio_limit", "2"),
        ("seeding_time_limit", 1.5),
        ("up_limit", -1),
        ("dl_limit", True),
        ("sequential", "yes"),
        ("rename", ""),
        ("paused", 1),
        ("tags", [1]),
    ],
)
def test_a_bad_queue_file_option_is_bad_shape(key: str, value: object) -> None:
    with pytest.raises(Rejected) as caught:
        items.parse_item("q.json", queue(**{key: value}))
    assert caught.value.reason == "bad_shape"
    assert repr(key) in caught.value.detail


def test_layering_defaults_folder_file() -> None:
    defaults = AddOptions(category="d", tags=("magnetd",), up_limit=1, dl_limit=2)
    folders = {"tv": AddOptions(category="tv-sonarr", savepath="/data/tv", tags=("tv",), up_limit=3)}
    own = AddOptions(up_limit=4, rename="r")
    at_top = options.layered(defaults, folders, str(PurePath("x.magnet")), own)
    assert at_top == AddOptions(category="d", tags=("magnetd",), up_limit=4, dl_limit=2, rename="r")
    in_tv = options.layered(defaults, folders, str(PurePath("tv/x.magnet")), AddOptions())
    assert in_tv == AddOptions("tv-sonarr", "/data/tv", ("magnetd", "tv"), up_limit=3, dl_limit=2)
    in_books = options.layered(defaults, folders, str(PurePath("books/sf/x.magnet")), AddOptions())
    assert in_books.category == "books/sf" and in_books.tags == ("magnetd",)
    own_tags = options.layered(defaults, folders, str(PurePath("tv/x.json")), AddOptions(tags=("mine",)))
    assert own_tags.tags == ("mine",), "a queue file's own tags win"


def test_form_fields_and_autotmm_rule() -> None:
    form = options_form(
        AddOptions(
            savepath="/d",
            paused=True,
            skip_checking=True,
            sequential=True,
            first_last_piece=True,
            content_layout="Subfolder",
            rename="n",
            ratio_limit=1.5,
            seeding_time_limit=60,
            up_limit=10,
            dl_limit=20,
            stop_condition="FilesChecked",
        )
    )
    assert form == {
        "savepath": "/d",
        "autoTMM": "false",
        "paused": "true",
        "stopped": "true",
        "skip_checking": "true",
        "seedMode": "true",
        "sequentialDownload": "true",
        "firstLastPiecePrio": "true",
        "contentLayout": "Subfolder",
        "rename": "n",
        "ratioLimit": "1.5",
        "seedingTimeLimit": "60",
        "upLimit": "10",
        "dlLimit": "20",
        "stopCondition": "FilesChecked",
    }
    assert options_form(AddOptions(savepath="/d", auto_tmm=True))["autoTMM"] == "true"
    assert "autoTMM" not in options_form(AddOptions(category="c"))


def test_layered_results_follow_a_new_folders_mapping() -> None:
    defaults = AddOptions(tags=("all",))
    rel = str(PurePath("tv/x.magnet"))
    first = {"tv": AddOptions(category="shows", tags=("tv",))}
    assert options.layered(defaults, first, rel, AddOptions()) == AddOptions(
        category="shows", tags=("all", "tv")
    )
    reloaded = {"tv": AddOptions(savepath="/srv/tv")}  # a reload: another mapping, other options
    again = options.layered(defaults, reloaded, rel, AddOptions())
    assert again == AddOptions(category="tv", savepath="/srv/tv", tags=("all",))
    assert options.layered(defaults, first, rel, AddOptions(paused=True)).paused is True


def test_a_top_level_file_without_options_gets_the_defaults_in_force() -> None:
    first = AddOptions(category="tv", tags=("a",), paused=True)
    second = AddOptions(category="books")
    folders = {"tv": AddOptions(category="shows")}
    assert options.layered(first, folders, "x.magnet", NO_OPTIONS) == NO_OPTIONS.over(first)
    assert options.layered(first, folders, "x.magnet", NO_OPTIONS).category == "tv"
    assert options.layered(second, folders, "y.magnet", NO_OPTIONS).category == "books"  # new defaults
    assert options.layered(first, folders, "x.magnet", NO_OPTIONS).category == "tv"  # and back
    own = AddOptions(category="mine")
    assert options.layered(first, folders, "q.json", own).category == "mine"
    assert options.layered(first, folders, "tv/x.magnet", NO_OPTIONS).category == "shows"
