"""The playground page in a real headless Chromium against the local stack: it signs up, uploads
generated photos through the signed flow, starts, follows the job to the end, and cancels."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from devstack.replicate_emulator import ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.stack import LocalStack
from tests.browser.conftest import save_screenshot, wait

PHASE_ORDER = ["uploading", "preparing_gpu", "reading_photos", "training", "saving", "done"]

# Everything the test reads off the page in one round trip.
SNAPSHOT_JS = """
const chart = document.getElementById('chart');
return {
  jobId: document.getElementById('job-id').textContent,
  status: document.getElementById('status').dataset.status,
  progress: document.getElementById('progress').value,
  points: Number(chart.dataset.points || 0),
  source: chart.dataset.source || '',
  circles: chart.querySelectorAll('circle').length,
  phase: document.getElementById('phase').dataset.phase,
  phaseText: document.getElementById('phase').textContent,
  photos: Array.from(document.querySelectorAll('#photo-list progress'), (p) => p.value),
  eta: document.getElementById('eta').textContent,
  model: document.getElementById('model-version').textContent,
  message: document.getElementById('training-message').textContent,
  photosMessage: document.getElementById('photos-message').textContent,
  photosError: document.getElementById('photos-message').classList.contains('error'),
};
"""


@pytest.fixture
def train_for(emulator: ReplicateEmulator) -> Iterator[Callable[[float], None]]:
    """How long trainings created from now on run (the session stack's default is 1.5 s)."""
    before = emulator.train_seconds

    def set_seconds(seconds: float) -> None:
        emulator.train_seconds = seconds

    yield set_seconds
    emulator.train_seconds = before


def open_playground(browser: WebDriver, stack: LocalStack) -> None:
    assert stack.playground is not None
    browser.get(stack.playground.url)
    wait(browser).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def sign_up(browser: WebDriver) -> str:
    email = f"page-{uuid.uuid4().hex[:10]}@flurrty.test"
    browser.find_element(By.ID, "email").send_keys(email)
    browser.find_element(By.ID, "password").send_keys("correct horse battery")
    browser.find_element(By.ID, "sign-up").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "signed-in")))
    assert browser.find_element(By.ID, "user-email").text == email
    return email


def upload_and_start(browser: WebDriver, folder: Path, count: int = 4) -> None:
    paths = []
    for index in range(count):
        path = folder / f"photo-{index + 1}.jpg"
        path.write_bytes(make_photo(768, 768, seed=7_000 + index))
        paths.append(str(path))
    browser.find_element(By.ID, "photo-input").send_keys("\n".join(paths))
    button = browser.find_element(By.ID, "upload")
    wait(browser).until(lambda _: button.is_enabled())
    button.click()


def snapshot(browser: WebDriver) -> dict[str, Any]:
    result: dict[str, Any] = browser.execute_script(SNAPSHOT_JS)
    return result


def follow(browser: WebDriver, until: Callable[[dict[str, Any]], bool], seconds: float = 60):
    """Every state the page shows (read every 0.1 s) until `until` holds for one of them."""
    seen: list[dict[str, Any]] = []

    def done(driver: WebDriver) -> bool:
        state = snapshot(driver)
        seen.append(state)
        if state["photosError"]:
            raise AssertionError(f"the page shows an error: {state['photosMessage']}")
        return until(state)

    try:
        wait(browser, seconds).until(done)
    except TimeoutException as exc:
        raise AssertionError(f"page never got there; last state: {seen[-1:]}") from exc
    return seen


def job_row(stack: LocalStack, job_id: str) -> tuple[Any, ...]:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as conn:
        row = conn.execute(
            "select status, replicate_training_id, error_message from ai_training_jobs"
            " where id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None, f"no job {job_id}"
    return tuple(row)


def test_four_photos_through_the_page_to_completed(
    browser: WebDriver,
    stack: LocalStack,
    tmp_path: Path,
    train_for: Callable[[float], None],
) -> None:
    train_for(6.0)  # long enough for several status reads while it trains
    open_playground(browser, stack)
    sign_up(browser)
    upload_and_start(browser, tmp_path)

    seen = follow(browser, lambda s: s["status"] in ("completed", "failed"))
    final = seen[-1]
    assert final["status"] == "completed", final

    # Each of the four photos went up with its own progress bar, all the way.
    assert final["photos"] == [100, 100, 100, 100]
    # The phase changed: training first, then completed (never back).
    phases = [s["status"] for s in seen if s["status"]]
    order = list(dict.fromkeys(phases))
    assert order[-2:] == ["training", "completed"], order
    # Progress only rose, through values between the start (30) and the end (100).
    progress = [s["progress"] for s in seen if s["status"]]
    assert progress == sorted(progress), progress
    assert any(30 < p < 100 for p in progress), progress
    assert final["progress"] == 100
    # The phase a person reads went forward only, through training step n of N, to done.
    shown = list(dict.fromkeys(s["phase"] for s in seen if s["phase"]))
    assert shown[-1] == "done" and "training" in shown, shown
    assert shown == [p for p in PHASE_ORDER if p in shown], shown
    assert any(re.fullmatch(r"Training, step \d+ of 1000", s["phaseText"]) for s in seen)
    # The chart drew progress per status read, then the trainer's loss from the history: far
    # more points than the page made reads.
    reads = len({s["progress"] for s in seen if s["status"]})
    from_history = [s["points"] for s in seen if s["source"] == "history"]
    assert from_history and from_history == sorted(from_history), from_history
    assert final["source"] == "history" and final["points"] >= 100 > reads, (final, reads)
    assert final["circles"] == final["points"]
    training = [s for s in seen if s["status"] == "training"]
    assert any(s["eta"].startswith("about ") for s in training), training[-1]
    assert re.fullmatch(r"[\w-]+/[\w-]+:[0-9a-f]{64}", final["model"]), final["model"]
    assert final["message"] == ""

    # The version's first pictures: the page keeps following the job until they are made, and
    # shows each from its signed Storage URL (our private copy), never from Replicate.
    def pictures(driver: WebDriver) -> list[dict[str, Any]] | Literal[False]:
        shown: list[dict[str, Any]] = driver.execute_script(PICTURES_JS)
        loaded = [p for p in shown if p["loaded"]]
        return shown if len(loaded) == 4 else False

    try:
        shown = wait(browser, 60).until(pictures)
    except TimeoutException as exc:
        state = browser.execute_script(
            "return [document.getElementById('previews-caption').textContent,"
            " Array.from(document.querySelectorAll('#previews img'), i => [i.complete, i.naturalWidth])]"
        )
        raise AssertionError(f"the pictures never showed: {state}") from exc
    assert all("/storage/v1/object/sign/" in p["src"] for p in shown), shown
    assert all(
        stack.replicate is not None and str(stack.replicate.port) not in p["src"] for p in shown
    )
    caption = browser.find_element(By.ID, "previews-caption").text
    assert caption == "Pictures ready: 4 of 4", caption

    shot = save_screenshot(browser, "playground-completed.png")
    assert shot.stat().st_size > 10_000


def test_cancel_from_the_page(
    browser: WebDriver,
    stack: LocalStack,
    emulator: ReplicateEmulator,
    tmp_path: Path,
    train_for: Callable[[float], None],
) -> None:
    train_for(300.0)
    open_playground(browser, stack)
    sign_up(browser)
    upload_and_start(browser, tmp_path, count=3)
    follow(browser, lambda s: s["status"] == "training")

    browser.find_element(By.ID, "cancel").click()
    final = follow(browser, lambda s: s["status"] == "failed", seconds=30)[-1]

    assert final["message"] == "Canceled by user."
    assert not browser.find_element(By.ID, "cancel").is_enabled()
    job_id = browser.find_element(By.ID, "job-id").text
    status, training_id, error = job_row(stack, job_id)
    assert (status, error) == ("failed", "Canceled by user.")
    assert emulator.training(training_id)["status"] == "canceled"
    save_screenshot(browser, "playground-canceled.png")


PICTURES_JS = """
return Array.from(document.querySelectorAll('#previews img'), (img) => ({
  src: img.src, loaded: img.complete && img.naturalWidth > 0,
}));
"""


VERSIONS_JS = """
return Array.from(document.querySelectorAll('#twin-list .twin'), (twin) => ({
  twinId: twin.dataset.twinId,
  title: twin.querySelector('h3').textContent,
  retrainEnabled: !twin.querySelector('button.retrain').disabled,
  versions: Array.from(twin.querySelectorAll('tbody tr'), (row) => ({
    jobId: row.dataset.jobId,
    version: Number(row.dataset.version),
    active: row.dataset.active === 'true',
    status: row.dataset.status,
    action: row.querySelector('button.activate')?.textContent ?? null,
  })),
}));
"""


def twins_shown(browser: WebDriver) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = browser.execute_script(VERSIONS_JS)
    return result


def active_job_of(stack: LocalStack, twin_id: str) -> str:
    assert stack.pg is not None
    with psycopg.connect(stack.pg.dsn()) as conn:
        row = conn.execute("select active_job_id from twins where id = %s", (twin_id,)).fetchone()
    assert row is not None, f"no twin {twin_id}"
    return str(row[0])


def test_a_second_version_from_the_page_then_roll_back_to_the_first(
    browser: WebDriver,
    stack: LocalStack,
    tmp_path: Path,
    train_for: Callable[[float], None],
) -> None:
    train_for(1.0)
    open_playground(browser, stack)
    sign_up(browser)
    wait(browser).until(lambda d: "No twins yet" in d.find_element(By.ID, "twins-message").text)

    upload_and_start(browser, tmp_path)
    follow(browser, lambda s: s["status"] == "completed")
    wait(browser).until(
        lambda d: [v["active"] for t in twins_shown(d) for v in t["versions"]] == [True]
    )
    [twin] = twins_shown(browser)
    first = twin["versions"][0]["jobId"]
    assert twin["title"] == "Ember: version 1 active" and twin["retrainEnabled"], twin

    # Train a new version of the same twin: the upload panel says so, and sends its twinId.
    browser.find_element(
        By.CSS_SELECTOR, f'[data-twin-id="{twin["twinId"]}"] button.retrain'
    ).click()
    assert browser.find_element(By.ID, "retrain-name").text == "Ember"
    assert not browser.find_element(By.ID, "twin-name").is_displayed()
    second_folder = tmp_path / "second"
    second_folder.mkdir()
    upload_and_start(browser, second_folder, count=3)
    follow(browser, lambda s: s["jobId"] not in ("", first) and s["status"] == "completed")
    # Until the new job's first answer the page still shows the previous job's status (its
    # start takes a moment under load): the version it shows is the new job's once it answers.
    wait(browser).until(lambda d: d.find_element(By.ID, "job-version").text == "2")

    def two_versions(driver: WebDriver) -> bool:
        shown = twins_shown(driver)
        return (
            len(shown) == 1
            and [v["active"] for v in shown[0]["versions"]]
            in (
                [True, False],
                [False, True],
            )
            and any(v["version"] == 2 and v["active"] for v in shown[0]["versions"])
        )

    wait(browser).until(two_versions)
    [twin] = twins_shown(browser)
    by_version = {v["version"]: v for v in twin["versions"]}
    second = by_version[2]["jobId"]
    assert active_job_of(stack, twin["twinId"]) == second
    assert by_version[1]["action"] == "Roll back to this" and by_version[2]["action"] is None

    # Roll back: the database's active version is the first again, and the page shows it.
    browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{first}"] button.activate').click()
    wait(browser).until(
        lambda d: (
            {v["version"]: v["active"] for v in twins_shown(d)[0]["versions"]}
            == {1: True, 2: False}
        )
    )
    assert active_job_of(stack, twin["twinId"]) == first
    assert "now uses version 1" in browser.find_element(By.ID, "twins-message").text
    [twin] = twins_shown(browser)
    assert twin["title"] == "Ember: version 1 active"
    assert {v["version"]: v["action"] for v in twin["versions"]} == {1: None, 2: "Make active"}
    save_screenshot(browser, "playground-versions.png")
