"""What the trainer's logs say: how far it got (its phase), its step bar, its pace and loss.

The shapes (team reference: Replicate 6.3, next capabilities 3.1): train.py prints
`Downloaded base weights in X seconds`, `Extracted N files …`, captions, then ai-toolkit's bars;
the trainer's own bar is labelled `flux_train_replicate` and from step 1 carries a postfix:
`flux_train_replicate:  45%|████▌     | 450/1000 [05:12<06:21,  1.44it/s, lr: 4.0e-04 loss: 3.456e-01]`.
Earlier bars without that label (file lists, latent caching) belong to reading the photos, not to
training. Every redraw is its own line; the last line of a read may be cut off mid-way: a bar
counts once ` [` follows its total, and a last line without its timing is left for the next read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from shared.domain.phases import Phase

# One redraw of the trainer's bar: step, total, then (when the line is whole) elapsed, rate and
# its unit, and the loss from step 1 on.
_BAR = re.compile(
    r"flux_train_replicate:\s*\d{1,3}%\|[^|\r\n]*\|\s*(\d+)/(\d+)\s*\["
    r"(?:([\d:]+)<[\d:?]+,\s*(?:([\d.]+)(it/s|s/it)|\?it/s)"
    r"(?:,\s*lr:\s*\S+\s+loss:\s*([-+]?\d[\d.]*(?:e[-+]?\d+)?))?\])?"
)
_DOWNLOADED = re.compile(r"Downloaded base weights in ([\d.]+(?:e[-+]?\d+)?) seconds")
# Lines train.py and ai-toolkit print once the photos are being read (unzip, captioning, the
# datasets and their latent caches), in that order.
_READING = re.compile(
    r"Extracted \d+ files|Caption for |is already captioned|Starting train job|Dataset: "
    r"|Caching latents"
)


class Bar(NamedTuple):
    """One redraw of the trainer's bar (a tuple: long logs hold thousands)."""

    step: int
    total: int
    elapsed: float | None = None  # seconds since the bar began (tqdm shows whole seconds)
    rate: float | None = None  # steps per second, tqdm's smoothed figure
    loss: float | None = None  # the raw loss of this step


@dataclass(frozen=True)
class LogReading:
    phase: Phase | None = None  # the furthest phase the logs show, None before anything
    download_seconds: float | None = None
    last: Bar | None = None  # the trainer's latest step
    # The last redraw of each step, as text: long logs hold thousands, and a refresh needs only
    # the newest few (`bars_since`) and a sample (`sample`), so only those are converted.
    lines: tuple[tuple[str, ...], ...] = ()

    def bars_since(self, step: int) -> list[Bar]:
        """The bars from `step` on, oldest first."""
        bars = []
        for found in reversed(self.lines):
            bar = _bar(*found)
            if bar.step < step:
                break
            bars.append(bar)
        return bars[::-1]

    def sample(self, count: int) -> list[Bar]:
        """About `count` bars spread evenly over the training, the latest among them."""
        every = max(1, len(self.lines) // count)
        return [_bar(*found) for found in self.lines[::-every][::-1]]


def _seconds(clock: str) -> float:
    if len(clock) == 5:  # mm:ss, the usual case, without a split
        return int(clock[:2]) * 60 + int(clock[3:])
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part or 0)
    return seconds


def _bar(step: str, total: str, elapsed: str, value: str, unit: str, loss: str) -> Bar:
    rate = None
    if value and (shown := float(value)) > 0:
        rate = shown if unit == "it/s" else 1 / shown
    return Bar(
        min(int(step), int(total)),
        int(total),
        _seconds(elapsed) if elapsed else None,
        rate,
        float(loss) if loss else None,
    )


def _cut_off(logs: str) -> bool:
    """Whether the logs end in a bar line that stops before its timing."""
    tail = logs[max(logs.rfind("\n"), logs.rfind("\r")) + 1 :]
    match = _BAR.search(tail)
    return match is not None and not match.group(3)


def read_logs(logs: str | None) -> LogReading:
    if not logs:
        return LogReading()
    # The last redraw of each step (the trainer draws one for the count, one for the postfix).
    lines: list[tuple[str, ...]] = []
    for found in _BAR.findall(logs):
        if found[1].strip("0") == "":
            continue  # a total of 0: not a bar to read
        if lines and lines[-1][0] == found[0]:
            lines[-1] = found
        else:
            lines.append(found)
    if lines and _cut_off(logs):
        lines.pop()  # the last line, cut off mid-way: the next read has it whole
    last = _bar(*lines[-1]) if lines else None
    downloaded = _DOWNLOADED.search(logs)
    phase = None
    if last is not None:
        phase = Phase.SAVING if last.step == last.total else Phase.TRAINING
    elif _READING.search(logs):
        phase = Phase.READING_PHOTOS
    elif logs.strip():
        phase = Phase.PREPARING_GPU
    return LogReading(
        phase=phase,
        download_seconds=float(downloaded.group(1)) if downloaded else None,
        last=last,
        lines=tuple(lines),
    )
