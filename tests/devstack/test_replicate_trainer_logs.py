"""The trainer's logs in their recorded shape (team reference: next capabilities 3.1,
Replicate 6.3): phases in train.py's order, the labelled bar with its postfix, timings on the
emulator's clock.
"""

from __future__ import annotations

import io
import itertools
import re
import statistics
import tarfile

import httpx
import pytest
import replicate

from devstack.replicate_emulator import ReplicateEmulator
from shared.domain.progress import trainer_steps
from tests.devstack.replicate_fixtures import (
    BARE_BAR,
    FakeClock,
    client,
    clock,
    emu,
    photos_zip,
    start_training,
    upload_zip,
)

__all__ = ["client", "clock", "emu"]  # fixtures

# The regex from the team reference (next capabilities 3.2), with and without the postfix.
FULL_BAR = re.compile(
    r"flux_train_replicate:\s*(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<step>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+),\s*(?P<rate>[\d.]+|\?)(?P<unit>it/s|s/it)"
    r"(?:,\s*lr:\s*(?P<lr>[-+\d.e]+)\s+loss:\s*(?P<loss>[-+\d.e]+))?\]"
)


def first_index(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_phases_come_in_train_py_order(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock
) -> None:
    zip_data = photos_zip(("a.jpg", "a.txt", "b.jpg", "c.png"))  # a.jpg has its caption
    training = start_training(client, upload_zip(client, zip_data), input={"steps": 300})
    clock.advance(10 + 100)
    training.reload()
    lines = (training.logs or "").splitlines()
    order = [
        first_index(lines, "Turning gradient checkpointing on and quantizing base model"),
        first_index(lines, "Downloaded base weights in "),
        first_index(lines, "Extracted 4 files from zip to input_images"),
        first_index(lines, "downloading to:  liuhaotian/llava-v1.5-13b"),
        first_index(lines, "a.jpg is already captioned"),
        first_index(lines, "Caption for input_images/b.jpg: "),
        first_index(lines, "Starting train job"),
        first_index(lines, "Dataset: input_images"),
        first_index(lines, "Caching latents: "),
        first_index(lines, "flux_train_replicate:   0%|"),
        first_index(lines, "flux_train_replicate:   0%|          | 1/300"),
        first_index(lines, "Saved to output/flux_train_replicate/flux_train_replicate.safetensors"),
        first_index(lines, "output/flux_train_replicate/"),
    ]
    assert order == sorted(order)
    # One dataset per resolution (ai-toolkit splits "512,768,1024"), bare bars in each.
    assert [line for line in lines if line.endswith(" files") and "x" in line] == [
        "512x512: 3 files",
        "768x768: 3 files",
        "1024x1024: 3 files",
    ]
    assert sum(1 for line in lines if BARE_BAR.match(line)) == 6
    # The tar listing after 100 % names what the weights tar holds.
    listing = lines[first_index(lines, "output/flux_train_replicate/") :]
    weights = io.BytesIO(httpx.get(training.output["weights"]).content)
    with tarfile.open(fileobj=weights) as tar:
        members = set(tar.getnames())
    assert {line for line in listing if not line.endswith("/")} == members
    assert "output/flux_train_replicate/captions/b.txt" in members  # written by the captioner


def test_the_trainer_bar_has_a_postfix_from_step_one_and_a_falling_loss(
    client: replicate.Client, clock: FakeClock
) -> None:
    training = start_training(client, upload_zip(client), input={"steps": 1000})
    clock.advance(10 + 100)
    training.reload()
    bars = [m for m in map(FULL_BAR.search, (training.logs or "").splitlines()) if m]
    assert [m["step"] for m in bars] == [str(k) for k in range(1001)]
    assert bars[0]["lr"] is None and bars[0]["eta"] == "?"  # 0/1000: no postfix yet
    assert all(m["lr"] == "4.0e-04" for m in bars[1:])
    losses = [float(m["loss"]) for m in bars[1:]]
    assert statistics.mean(losses[:100]) > statistics.mean(losses[-100:])
    rises = sum(1 for a, b in itertools.pairwise(losses[:101]) if b > a)
    assert 20 < rises < 80  # noisy: the raw per-step loss, not a smooth curve
    assert trainer_steps(training.logs) == (1000, 1000)  # the project's parser
    # On the emulator's clock: 80 % of the 100 s processing time for 1000 steps.
    assert bars[-1]["elapsed"] == "01:20" and bars[-1]["eta"] == "00:00"
    assert float(bars[-1]["rate"]) == pytest.approx(12.5, rel=0.05)
    elapsed = [int(m["elapsed"][:2]) * 60 + int(m["elapsed"][3:]) for m in bars]
    assert elapsed == sorted(elapsed)


def test_bar_timings_follow_the_configured_phase_shares(
    emu: ReplicateEmulator, client: replicate.Client, clock: FakeClock
) -> None:
    # A realistic timeline: 30 min processing, half of it before the first step.
    emu.train_seconds = 1800
    emu.log_phases = {
        "download": 0.2,
        "extract": 0,
        "caption": 0.2,
        "prepare": 0.1,
        "train": 0.5,
        "save": 0,
    }
    training = start_training(client, upload_zip(client), input={"steps": 450})
    clock.advance(10 + 0.5 * 1800 - 1)
    training.reload()
    assert trainer_steps(training.logs) is None  # still preparing
    lines = (training.logs or "").splitlines()
    assert "Downloaded base weights in 360.0 seconds" in lines
    clock.advance(1 + 450)  # half of the 900 s training phase
    training.reload()
    last = [m for m in map(FULL_BAR.search, (training.logs or "").splitlines()) if m][-1]
    assert last["step"] == "225"
    assert last["elapsed"] == "07:30" and last["unit"] == "s/it"  # 0.5 it/s shows as s/it
    assert float(last["rate"]) == pytest.approx(2.0, rel=0.05)
    minutes, seconds = last["eta"].split(":")
    assert abs(60 * int(minutes) + int(seconds) - 450) <= 15  # tqdm's ETA from its rate


def test_captioning_lines_only_when_the_captioner_runs(
    client: replicate.Client, clock: FakeClock
) -> None:
    all_captioned = photos_zip(("a.jpg", "a.txt"))
    runs = {
        "off": start_training(client, upload_zip(client), input={"autocaption": False}),
        "captioned": start_training(client, upload_zip(client, all_captioned)),
        "on": start_training(client, upload_zip(client)),
    }
    clock.advance(10 + 100)
    logs = {name: (t.reload(), t.logs or "")[1] for name, t in runs.items()}
    # train.py loads the captioner only with autocaption on and some image uncaptioned.
    for quiet in ("off", "captioned"):
        assert not re.search(r"Caption for|is already captioned|downloading to:", logs[quiet])
    assert logs["on"].count("Caption for input_images/") == 3
    assert logs["on"].count("downloading to:  ") == 2


def test_saving_lines_with_wandb_and_the_gradient_checkpointing_variants(
    client: replicate.Client, clock: FakeClock
) -> None:
    wandb = {"steps": 250, "wandb_api_key": "k", "wandb_save_interval": 100}
    runs = [
        start_training(client, upload_zip(client), input=wandb),
        start_training(client, upload_zip(client), input={"batch_size": 2}),
        start_training(client, upload_zip(client), input={"gradient_checkpointing": True}),
    ]
    clock.advance(10 + 100)
    saved, batch, checkpointing = ((t.reload(), t.logs or "")[1] for t in runs)
    # save_every is the W&B interval only with W&B on (train.py); never at the last step.
    assert re.findall(r"^Saving at step (\d+)$", saved, re.M) == ["100", "200"]
    assert "Saving at step" not in batch
    assert batch.startswith("Turning gradient checkpointing on automatically for batch size > 1")
    assert checkpointing.startswith("Downloaded base weights in ")


def test_log_phase_shares_are_checked_and_settable_over_http(emu: ReplicateEmulator) -> None:
    with pytest.raises(ValueError, match="unknown log phase"):
        emu.log_phases = {"warmup": 0.5}
    with pytest.raises(ValueError, match="share >= 0"):
        emu.log_phases = {"train": -1}
    control = f"{emu.base_url}/_emulator/config"
    refused = httpx.post(control, json={"log_phases": {"train": "most"}})
    assert refused.status_code == 400 and "share" in refused.json()["detail"]
    shares = httpx.post(control, json={"log_phases": {"train": 3, "save": 1}}).json()["log_phases"]
    assert sum(shares.values()) == pytest.approx(1)
    assert shares["train"] == pytest.approx(3 * shares["save"])
