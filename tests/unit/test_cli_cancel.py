"""``vidloc cancel VIDEO``: the running job's marker written under the tenant, refusals with
their exit codes, nothing written unless 0. A fake bus says where the video stands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_fixtures import WritableStore

from vidloc import names
from vidloc.api.models import VideoState
from vidloc.cli.cancel import cancel
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.settings import Settings


class Bus:
    def __init__(self, states: dict[tuple[str | None, str], VideoState]) -> None:
        self.states = states

    def video_state(
        self, video_id: str, tenant: str | None, has_timeline: bool
    ) -> VideoState | None:
        return self.states.get((tenant, video_id))


def _state(video_id: str, status: str, job_id: str | None = "job-7") -> VideoState:
    return VideoState.model_validate(
        {
            "video_id": video_id,
            "status": status,
            "job_id": job_id,
            "has_timeline": False,
            "updated_at": datetime.now(UTC),
        }
    )


BUS = Bus(
    {
        ("acme", "long"): _state("long", "running"),
        ("acme", "done"): _state("done", "succeeded"),
        (None, "mine"): _state("mine", "stalled"),
    }
)


@pytest.mark.parametrize(
    ("video_id", "tenant", "key"),
    [
        pytest.param("long", "acme", names.cancel_key("long", "job-7", "acme"), id="tenant"),
        pytest.param("mine", None, names.cancel_key("mine", "job-7"), id="no-tenant-stalled"),
    ],
)
def test_cancel_writes_the_running_jobs_marker(
    video_id: str, tenant: str | None, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = WritableStore()
    code = cancel(Settings(), video_id, tenant=tenant, store=store, bus=BUS)  # type: ignore[arg-type]
    assert code == EXIT_OK
    assert set(store.objects) == {("timelines", key)}
    assert "job-7" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("video_id", "tenant", "code", "said"),
    [
        pytest.param("done", "acme", EXIT_FAILED, "video_not_running", id="finished"),
        pytest.param("long", "bravo", EXIT_FAILED, "video_not_found", id="another-tenant"),
        pytest.param("nobody", "acme", EXIT_FAILED, "video_not_found", id="unknown"),
        pytest.param("../x", "acme", EXIT_USAGE, "not a video id", id="bad-id"),
    ],
)
def test_cancel_refuses_and_writes_nothing(
    video_id: str, tenant: str, code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = WritableStore()
    assert cancel(Settings(), video_id, tenant=tenant, store=store, bus=BUS) == code  # type: ignore[arg-type]
    assert store.objects == {}
    assert said in capsys.readouterr().err
