"""``vidloc timeline`` and ``vidloc watch`` as a user runs them, on the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apistack import (
    isolated_settings,
    publish_failed,
    publish_succeeded,
    put_timeline,
    timeline_for,
    unique_id,
)
from pipeline import REPO

from vidloc.adapters.kafka import EventPublisher
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = [("red circle", 1.0, 3.0), ("green square", 5.0, 7.5)]


@pytest.fixture(scope="module")
def cli_settings(stack: Settings) -> Settings:
    return isolated_settings(stack, "cli")


@pytest.fixture(scope="module")
def env(cli_settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": cli_settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": cli_settings.timeline_bucket,
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def stored(cli_settings: Settings) -> str:
    vid = unique_id("cli")
    put_timeline(
        cli_settings, timeline_for(vid, cli_settings.video_bucket, "up/v.mp4", events=EVENTS)
    )
    return vid


def vidloc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidloc", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_timeline_table_json_and_html(env: dict[str, str], stored: str, tmp_path: Path) -> None:
    table = vidloc(env, "timeline", stored)
    assert table.returncode == 0, table.stderr
    assert "red circle" in table.stdout and "5.0s" in table.stdout and "7.5s" in table.stdout
    as_json = vidloc(env, "timeline", stored, "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["video_id"] == stored and [e["label"] for e in doc["events"]] == [
        "red circle",
        "green square",
    ]
    page = tmp_path / "view.html"
    exported = vidloc(env, "timeline", stored, "--html", str(page), "--expires", "600")
    assert exported.returncode == 0, exported.stderr
    html = page.read_text(encoding="utf-8")
    assert html.count('class="bar"') == 2 and "X-Amz-Expires=600" in html


def test_timeline_exit_codes(env: dict[str, str]) -> None:
    missing = vidloc(env, "timeline", "no-such-video")
    assert missing.returncode == 1 and "no timeline" in missing.stderr
    bad = vidloc(env, "timeline", "../etc")
    assert bad.returncode == 2


def test_watch_prints_results_as_they_arrive(env: dict[str, str], cli_settings: Settings) -> None:
    ok, bad = unique_id("watch-ok"), unique_id("watch-bad")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidloc", "watch", "--video", ok, "--video", bad, "--count", "2",
         "--timeout", "60"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        # The tail is positioned before it says so: publish only after the banner.
        banner = proc.stderr.readline()
        assert "watching video.results" in banner
        with EventPublisher(cli_settings) as publisher:
            publish_succeeded(publisher, cli_settings, ok)
            publish_failed(publisher, bad)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"succeeded {ok}") and "3 events" in lines[0]
    assert lines[1].startswith(f"failed {bad}") and "not_a_video" in lines[1]


def test_watch_from_beginning_json_and_timeout(env: dict[str, str], cli_settings: Settings) -> None:
    vid = unique_id("watch-old")
    with EventPublisher(cli_settings) as publisher:
        publish_failed(publisher, vid)
    started = time.monotonic()
    replay = vidloc(env, "watch", "--from-beginning", "--json", "--video", vid, "--count", "1",
                    "--timeout", "60")  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["video_id"] == vid
    # Nothing new for this id: the timeout passes before --count results, exit 3.
    waited = vidloc(env, "watch", "--video", vid, "--count", "1", "--timeout", "2")
    assert waited.returncode == 3, waited.stderr
    assert waited.stdout == "" and time.monotonic() - started < 80
