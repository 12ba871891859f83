"""The chaos run: many jobs through the whole flow while a share of every upstream call fails,
the start function dies at random between its steps, and starts arrive in concurrent duplicates.
Then a second wave retrains every completed twin (two retrains at once per twin) through the same
weather, and people flip between their versions concurrently. Afterwards the guarantees are
checked from the outside: every job final and in the state its training says, one training per
started job, no row lost, progress never lower, never two versions of one twin on their way at
the same time, every version number given once, every active version a completed one of its twin.

The components are the real ones (`PostgrestJobStore`, `SupabasePhotoStore`, `ReplicateTrainer`)
against a local stack (gateway + Storage emulator + PostgREST + Postgres, Replicate emulator).
Crashes come from proxies around them: `Crash` is raised before a call (it never happens) or
after it (it happened; nobody learnt the answer), and as a BaseException no handler swallows it.
A person retries as people do (upload again, press start again, poll), and sweeps run as the
schedule would. Webhooks from the emulator reach the real status handler over HTTP.

Used by tests/chaos (small, inside `make test`) and bench/chaos.py (bigger).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg

from devstack.gateway import Fault, FaultInjector
from devstack.replicate_emulator import RANDOM_FAULT_KINDS, ReplicateEmulator
from devstack.sample_photos import make_photo
from devstack.schema import create_user
from devstack.stack import LocalStack
from shared.adapters.postgrest_jobs import PostgrestJobStore
from shared.adapters.postgrest_previews import PostgrestPreviewStore
from shared.adapters.postgrest_queue import PostgrestTrainingQueue
from shared.adapters.postgrest_twins import PostgrestTwinStore
from shared.adapters.replicate import ReplicatePredictor, ReplicateTrainer, build_replicate_client
from shared.adapters.supabase_storage import SupabasePhotoStore
from shared.domain.caller import Caller
from shared.domain.job import ALLOWED_MOVES, JobStatus
from shared.errors import AppError
from shared.plumbing.deadline import Deadline
from shared.plumbing.settings import Settings, settings_from_env
from shared.services.deps import Deps
from shared.services.intake import normalise_all
from shared.services.previews import sweep_previews
from shared.services.start import start_training
from shared.services.status import get_status
from shared.services.sweep import sweep_all
from shared.services.twins import activate_version
from shared.services.upload import create_job_with_photos
from shared.services.versions import VersionPlan
from tests.crash import Boundaries, Crash
from tests.fakes import RecordingNotifier

CHAOS_ERROR = "CUDA out of memory (injected by the chaos run)"


@dataclass
class ChaosOptions:
    jobs: int = 50
    users: int = 5
    duplicates: int = 3  # concurrent start requests per job in the first wave
    fault_rate: float = 0.25  # share of Replicate and Supabase calls faulted
    crash_rate: float = 0.5  # share of start invocations that die (at a random step boundary)
    max_crashes_per_job: int = 2  # keeps the run short: each crash waits out a claim timeout
    failing_trainings: int = 5  # trainings the emulator fails on purpose
    webhook_faults: int = 6  # webhooks lost, and as many duplicated and reordered
    claim_timeout_seconds: float = 2.0
    invocation_seconds: float = 2.0  # each start, status call or sweep: its deadline
    request_timeout_seconds: float = 0.5  # our clients' timeouts
    hold_seconds: float = 0.7  # a slow or timed-out answer: the server acts after this long
    tick_seconds: float = 0.3
    give_up_seconds: float = 90.0
    workers: int = 32
    seed: int = 5
    # The training queue, small enough to be full most of the run: admission under fire.
    max_concurrent_trainings: int = 8
    max_trainings_per_user: int = 3
    preview_count: int = 2  # pictures per completed version (fewer than in AWS: a shorter run)

    def env(self) -> dict[str, str]:
        """What the functions run with (the stack's `extra_env`), so webhooks agree with us."""
        return {
            "CLAIM_TIMEOUT_SECONDS": str(self.claim_timeout_seconds),
            "STATUS_REFRESH_SECONDS": "0.5",
            "SWEEP_CONCURRENCY": "16",
            "MAX_CONCURRENT_TRAININGS": str(self.max_concurrent_trainings),
            "MAX_TRAININGS_PER_USER": str(self.max_trainings_per_user),
            "PREVIEW_COUNT": str(self.preview_count),
        }


@dataclass
class ChaosReport:
    jobs: int = 0
    upload_attempts: int = 0
    start_requests: int = 0
    duplicate_requests: int = 0
    status_requests: int = 0
    sweeps: int = 0
    crashes: int = 0
    crash_points: dict[str, int] = field(default_factory=dict)
    replicate_calls: int = 0
    replicate_faults: int = 0
    supabase_calls: int = 0
    supabase_faults: int = 0
    webhooks_sent: int = 0
    jobs_started: int = 0
    trainings_created: int = 0
    duplicates: int = 0  # trainings beyond one per job, or belonging to no job
    lost: int = 0  # rows that vanished, ever
    completed: int = 0
    failed: int = 0
    wrong_final_state: int = 0
    progress_regressions: int = 0
    retrain_attempts: int = 0
    retrains: int = 0  # versions 2+ created
    activations: int = 0
    twins_with_overlapping_versions: int = 0  # two versions of a twin on their way at once
    lost_versions: int = 0  # a retrain that answered with a job the database does not have
    max_in_flight: int = 0  # the most jobs in `training` at once, as the observer saw them
    max_trainings_running: int = 0  # the most trainings running at once, as Replicate saw them
    observations: int = 0
    # Previews: every completed version's set, through the same weather plus crashing sweeps.
    previews_expected: int = 0
    previews_ready: int = 0
    previews_failed: int = 0
    previews_lost: int = 0  # a completed version short of its set, a picture never final, a
    # ready one whose object is not in Storage
    predictions_created: int = 0
    duplicate_predictions: int = 0  # predictions beyond one per picture, or of no picture
    preview_crashes: int = 0
    previews_settle_seconds: float = 0.0  # after the last training ended
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def upstream_calls(self) -> int:
        return self.replicate_calls + self.supabase_calls

    @property
    def faults_injected(self) -> int:
        return self.replicate_faults + self.supabase_faults

    @property
    def fault_share(self) -> float:
        return self.faults_injected / max(1, self.upstream_calls)

    def figures(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("problems", "crash_points")}
        out.update(
            upstream_calls=self.upstream_calls,
            faults_injected=self.faults_injected,
            fault_share=round(self.fault_share, 3),
            seconds=round(self.seconds, 1),
            problems=len(self.problems),
        )
        return out


# --- faults -------------------------------------------------------------------------------------


class RandomFaults(FaultInjector):
    """The gateway's fault hook, firing on a share of all requests instead of on given paths."""

    def __init__(self, rate: float, seed: int, hold_seconds: float):
        super().__init__()
        self.rate = rate
        self.rng = random.Random(seed)
        self.fired = 0
        self.menu: list[tuple[str, dict[str, Any]]] = [
            ("status", {"status": 503}),
            ("status", {"status": 500}),
            ("status", {"status": 429, "headers": {"Retry-After": "0.2"}}),
            ("drop", {"when": "before"}),
            ("drop", {"when": "after"}),  # carried out, answer lost
            ("slow", {"seconds": 0.2}),  # slow but in time
            ("slow", {"seconds": hold_seconds}),  # past our timeout, then carried out
        ]

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            if self.rng.random() >= self.rate:
                return None
            kind, params = self.rng.choice(self.menu)
            self.fired += 1
        return Fault(method, re.compile(""), kind, None, params)


# --- crashes ------------------------------------------------------------------------------------


class CrashPlan:
    """Which start invocations die, and where: a share `rate` of them, each at one step boundary
    drawn uniformly from those of a whole start, so every window between two steps is hit (an
    invocation with fewer steps, e.g. a repeat answered from the row, may outlive its draw)."""

    # Before and after: get, queue it, read it back, admit, read the admitted job, destination,
    # 3 photo reads, upload, save URL, create, recent timelines, record. The photo reads run in
    # parallel: their boundaries fall in any order. Dying around the first read changes nothing,
    # and every repeat passes there: those two are not drawn.
    FIRST, BOUNDARIES = 2, 28

    def __init__(self, rate: float, per_job: int, seed: int):
        self.rate, self.per_job = rate, per_job
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.per_job_count: Counter[uuid.UUID] = Counter()
        self.points: Counter[str] = Counter()

    def invocation(self, job_id: uuid.UUID) -> Boundaries:
        with self.lock:
            dies = self.per_job_count[job_id] < self.per_job and self.rng.random() < self.rate
            target = self.rng.randrange(self.FIRST, self.BOUNDARIES) if dies else None
        return Boundaries(target, on_death=lambda point: self.died(job_id, point))

    def died(self, job_id: uuid.UUID, point: str) -> None:
        with self.lock:
            self.per_job_count[job_id] += 1
            self.points[point] += 1

    @property
    def total(self) -> int:
        return sum(self.per_job_count.values())


# --- the components, built against the stack ---------------------------------------------------


class Components:
    def __init__(self, stack: LocalStack, options: ChaosOptions):
        from postgrest import SyncPostgrestClient
        from storage3 import SyncStorageClient

        self.settings: Settings = settings_from_env(stack.function_env())
        key = stack.service_role_key
        headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        timeout = httpx.Timeout(options.request_timeout_seconds)

        def http() -> httpx.Client:
            return httpx.Client(
                headers=headers,
                timeout=timeout,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            )

        self.rest = SyncPostgrestClient(
            f"{stack.supabase_url}/rest/v1", headers=headers, http_client=http()
        )
        self.storage = SyncStorageClient(
            f"{stack.supabase_url}/storage/v1/", headers=headers, http_client=http()
        )
        self.storage_http = http()  # the streamed photo downloads of the start path
        self.downloads = httpx.Client(timeout=30.0)  # preview outputs
        self.replicate = build_replicate_client(self.settings, timeout)
        self.options = options

    def deps(self, invocation: Boundaries | None = None) -> Deps:
        """One invocation's view: its own deadline, and crash-prone when `invocation` is given."""
        deadline = Deadline(self.options.invocation_seconds)
        jobs: Any = PostgrestJobStore(lambda: self.rest, deadline)
        photos: Any = SupabasePhotoStore(
            lambda: self.storage,
            self.settings.training_photos_bucket,
            connect_http=lambda: self.storage_http,
            storage_url=f"{self.settings.supabase_url}/storage/v1",
            deadline=deadline,
        )
        trainer: Any = ReplicateTrainer(lambda: self.replicate, self.settings, deadline)
        twins: Any = PostgrestTwinStore(lambda: self.rest, deadline)
        queue: Any = PostgrestTrainingQueue(lambda: self.rest, deadline)
        previews: Any = PostgrestPreviewStore(lambda: self.rest, deadline)
        predictor: Any = ReplicatePredictor(
            lambda: self.replicate,
            self.settings,
            deadline,
            connect_downloads=lambda: self.downloads,
        )
        deps = Deps(
            self.settings,
            jobs,
            twins,
            photos,
            trainer,
            RecordingNotifier(),
            queue,
            previews,
            predictor,
        )
        return invocation.deps(deps) if invocation is not None else deps


# --- watching the rows --------------------------------------------------------------------------


class Observer(threading.Thread):
    """Reads every known job straight from Postgres, again and again, in one thread: the
    history of each row, in the order the database had it."""

    def __init__(self, dsn: str, interval: float = 0.05):
        super().__init__(name="chaos-observer", daemon=True)
        self.dsn, self.interval = dsn, interval
        self.ids: list[uuid.UUID] = []
        self.history: dict[uuid.UUID, list[tuple[str, int, str | None]]] = defaultdict(list)
        self.vanished: set[uuid.UUID] = set()
        self.snapshots = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def watch(self, job_id: uuid.UUID) -> None:
        with self._lock:
            self.ids.append(job_id)

    def latest(self) -> dict[uuid.UUID, tuple[str, int, str | None]]:
        with self._lock:
            return {i: h[-1] for i, h in self.history.items() if h}

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            while not self._halt.wait(self.interval):
                self._snapshot(db)
            self._snapshot(db)

    def _snapshot(self, db: psycopg.Connection) -> None:
        with self._lock:
            ids = list(self.ids)
        rows = db.execute(
            "select id, status, progress, replicate_training_id from ai_training_jobs"
            " where id = any(%s)",
            (ids,),
        ).fetchall()
        with self._lock:
            found = set()
            for job_id, status, progress, training_id in rows:
                found.add(job_id)
                self.history[job_id].append((status, progress, training_id))
            self.vanished |= set(ids) - found
            self.snapshots += 1
            in_flight = sum(1 for _, status, _, _ in rows if status == JobStatus.TRAINING.value)
            self.max_in_flight = max(self.max_in_flight, in_flight)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --- the run ------------------------------------------------------------------------------------


def run_chaos(stack: LocalStack, options: ChaosOptions) -> ChaosReport:
    emulator, gateway = stack.replicate, stack.gateway
    assert emulator is not None and gateway is not None and stack.pg is not None
    began = time.monotonic()
    report = ChaosReport()
    parts = Components(stack, options)
    crashes = CrashPlan(options.crash_rate, options.max_crashes_per_job, options.seed)
    emulator.reset()
    emulator.reset_stats()
    gateway.counters.reset()
    saved_faults = gateway.rest_faults, gateway.storage_faults
    rest_faults = RandomFaults(options.fault_rate, options.seed + 1, options.hold_seconds)
    storage_faults = RandomFaults(options.fault_rate, options.seed + 2, options.hold_seconds)
    gateway.rest_faults, gateway.storage_faults = rest_faults, storage_faults
    emulator.faults.probability(
        options.fault_rate,
        RANDOM_FAULT_KINDS,
        options.seed + 3,
        seconds=options.hold_seconds,
        retry_after=0.2,
    )
    emulator.next_training_outcome("failed", CHAOS_ERROR, times=options.failing_trainings)
    for kind in ("lose", "duplicate", "reorder"):
        emulator.webhook_faults.add(kind, times=options.webhook_faults)
    observer = Observer(stack.pg.dsn())
    observer.start()
    try:
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            owners = _upload(parts, stack.pg.dsn(), options, pool, observer, report)
            _first_wave(parts, crashes, options, pool, owners, report)
            _until_final(parts, crashes, options, pool, owners, observer, report)
            retrained = _retrain(parts, stack.pg.dsn(), pool, owners, observer, report)
            _first_wave(parts, crashes, options, pool, retrained, report)
            _until_final(parts, crashes, options, pool, retrained, observer, report)
            owners.update(retrained)
            _flip_versions(parts, stack.pg.dsn(), pool, owners, report)
            _until_previews_settled(parts, stack.pg.dsn(), options, owners, report)
    finally:
        observer.stop()
        emulator.faults.clear()
        emulator.webhook_faults.clear()
        gateway.rest_faults, gateway.storage_faults = saved_faults
    emulator.wait_for_webhooks(10.0)
    report.crashes = crashes.total
    report.crash_points = dict(crashes.points)
    report.replicate_calls = sum(emulator.calls.values())
    report.replicate_faults = sum(emulator.faults.fired.values())
    report.supabase_calls = gateway.counters.count(prefix="/rest/") + gateway.counters.count(
        prefix="/storage/"
    )
    report.supabase_faults = rest_faults.fired + storage_faults.fired
    report.webhooks_sent = len(emulator.webhook_deliveries)
    report.max_in_flight = observer.max_in_flight
    report.max_trainings_running = int(emulator.stats()["max_trainings_in_flight"])
    cap = options.max_concurrent_trainings
    if report.max_in_flight > cap or report.max_trainings_running > cap:
        report.problems.append(
            f"the cap of {cap} was exceeded: {report.max_in_flight} jobs in training,"
            f" {report.max_trainings_running} trainings running at Replicate"
        )
    _verify(emulator, stack.pg.dsn(), owners, observer, report)
    _verify_previews(emulator, stack.pg.dsn(), parts.settings.preview_count, owners, report)
    report.seconds = time.monotonic() - began
    return report


def _upload(
    parts: Components,
    dsn: str,
    options: ChaosOptions,
    pool: ThreadPoolExecutor,
    observer: Observer,
    report: ChaosReport,
) -> dict[uuid.UUID, uuid.UUID]:
    """`options.jobs` jobs, each uploaded until it succeeds (people retry a failed upload)."""
    users = [uuid.UUID(create_user(dsn)) for _ in range(options.users)]
    photos = [(f"p{i}.jpg", make_photo(640, 640, seed=i)) for i in range(3)]
    jpegs = normalise_all(photos, parts.settings)
    attempts = Counter[int]()

    def upload(n: int) -> tuple[uuid.UUID, uuid.UUID]:
        caller = Caller(user_id=users[n % len(users)], claims={})
        while True:
            attempts[n] += 1
            deps = parts.deps()
            try:
                job = create_job_with_photos(
                    caller, VersionPlan(f"Chaos {n}", {}, None), jpegs, deps
                )
            except AppError:
                continue
            observer.watch(job.id)
            return job.id, caller.user_id

    owners = dict(pool.map(upload, range(options.jobs)))
    report.jobs = len(owners)
    report.upload_attempts = sum(attempts.values())
    return owners


def _start(parts: Components, crashes: CrashPlan, job_id: uuid.UUID, user_id: uuid.UUID) -> None:
    # The person sees an error (or nothing) and presses start again later.
    with contextlib.suppress(Crash, AppError):
        start_training(user_id, job_id, parts.deps(crashes.invocation(job_id)))


def _first_wave(
    parts: Components,
    crashes: CrashPlan,
    options: ChaosOptions,
    pool: ThreadPoolExecutor,
    owners: dict[uuid.UUID, uuid.UUID],
    report: ChaosReport,
) -> None:
    """Every job's start pressed `duplicates` times at once (double clicks, several tabs)."""
    futures = [
        pool.submit(_start, parts, crashes, job_id, user_id)
        for job_id, user_id in owners.items()
        for _ in range(options.duplicates)
    ]
    wait(futures)
    report.start_requests += len(futures)
    report.duplicate_requests += len(futures) - len(owners)


def _until_final(
    parts: Components,
    crashes: CrashPlan,
    options: ChaosOptions,
    pool: ThreadPoolExecutor,
    owners: dict[uuid.UUID, uuid.UUID],
    observer: Observer,
    report: ChaosReport,
) -> None:
    """People press start again or poll; the schedule sweeps; until every job is final."""
    final = {JobStatus.COMPLETED.value, JobStatus.FAILED.value}
    give_up = time.monotonic() + options.give_up_seconds

    def poll(job_id: uuid.UUID, user_id: uuid.UUID) -> None:
        with contextlib.suppress(AppError):
            get_status(user_id, job_id, parts.deps())

    def scheduled_sweep() -> None:
        deadline = Deadline(options.invocation_seconds)
        sweep_all(parts.deps(), deadline)

    pressed: dict[uuid.UUID, float] = {}
    while (now := time.monotonic()) < give_up:
        rows = observer.latest()
        active = {j: rows.get(j) for j in owners if rows.get(j, ("",))[0] not in final}
        if not active:
            return
        tasks: list[Callable[[], None]] = [scheduled_sweep]
        for job_id, row in active.items():
            user_id = owners[job_id]
            if row is None or row[0] == "pending" or row[2] is None:
                # Not visibly started: press start again, twice at once. A claimed job is only
                # worth another press once its claim may have timed out.
                claimed = row is not None and row[0] == "training"
                if claimed and now - pressed.get(job_id, 0.0) < options.claim_timeout_seconds:
                    continue
                pressed[job_id] = now
                tasks += [partial(_start, parts, crashes, job_id, user_id)] * 2
                report.start_requests += 2
                report.duplicate_requests += 1
            else:
                tasks.append(partial(poll, job_id, user_id))
                report.status_requests += 1
        wait([pool.submit(task) for task in tasks])
        report.sweeps += 1
        time.sleep(options.tick_seconds)
    report.problems.append(f"not every job was final after {options.give_up_seconds:g} s")


def _settled_versions(dsn: str, owners: dict[uuid.UUID, uuid.UUID]) -> list[tuple[Any, ...]]:
    """(twin, job, owner) of every completed job, read straight from Postgres (no faults)."""
    with psycopg.connect(dsn, autocommit=True) as db:
        return db.execute(
            "select twin_id, id, user_id from ai_training_jobs"
            " where id = any(%s) and status = 'completed' order by twin_id, version",
            (list(owners),),
        ).fetchall()


def _retrain(
    parts: Components,
    dsn: str,
    pool: ThreadPoolExecutor,
    owners: dict[uuid.UUID, uuid.UUID],
    observer: Observer,
    report: ChaosReport,
) -> dict[uuid.UUID, uuid.UUID]:
    """Every completed twin retrained by two requests at once (a double click), each retried
    until it made a version or learnt the twin already has one on its way."""
    photos = [(f"p{i}.jpg", make_photo(640, 640, seed=100 + i)) for i in range(3)]
    jpegs = normalise_all(photos, parts.settings)
    twins = {twin_id: user_id for twin_id, _, user_id in _settled_versions(dsn, owners)}
    made: dict[uuid.UUID, uuid.UUID] = {}
    lock = threading.Lock()

    def adopt_the_version_on_its_way(twin_id: uuid.UUID, user_id: uuid.UUID) -> None:
        while True:
            try:
                versions = parts.deps().jobs.list_versions([twin_id])
            except Exception:
                continue  # the reads fail as often as anything else here
            for job in versions:
                if job.status is JobStatus.PENDING:
                    observer.watch(job.id)
                    with lock:
                        made[job.id] = user_id
            return

    def retrain(twin_id: uuid.UUID, user_id: uuid.UUID) -> None:
        caller = Caller(user_id=user_id, claims={})
        while True:
            deps = parts.deps()
            with lock:
                report.retrain_attempts += 1
            try:
                twin = deps.twins.get(twin_id)
                assert twin is not None
                plan = VersionPlan(twin.name, twin.customization_data, twin)
                job = create_job_with_photos(caller, plan, jpegs, deps)
            except AppError as exc:
                if exc.code == "twin_busy":
                    # A version is on its way: the other request's, or this one's own whose
                    # answer was lost. The person would see it on the twin; so do we.
                    adopt_the_version_on_its_way(twin_id, user_id)
                    return
                continue
            observer.watch(job.id)
            with lock:
                made[job.id] = user_id
            return

    wait([pool.submit(retrain, t, u) for t, u in twins.items() for _ in range(2)])
    report.retrains = len(made)
    return made


def _flip_versions(
    parts: Components,
    dsn: str,
    pool: ThreadPoolExecutor,
    owners: dict[uuid.UUID, uuid.UUID],
    report: ChaosReport,
) -> None:
    """People flip between their completed versions, three requests per twin at once."""
    rng = random.Random(7)
    versions: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for twin_id, job_id, _ in _settled_versions(dsn, owners):
        versions[twin_id].append(job_id)

    def activate(twin_id: uuid.UUID, job_id: uuid.UUID) -> None:
        with contextlib.suppress(AppError):
            activate_version(owners[job_id], twin_id, job_id, parts.deps())

    tasks = [
        (twin_id, rng.choice(ids)) for twin_id, ids in versions.items() if len(ids) > 1
        for _ in range(3)
    ]  # fmt: skip
    wait([pool.submit(activate, t, j) for t, j in tasks])
    report.activations = len(tasks)


def _verify_twins(
    db: psycopg.Connection, owners: dict[uuid.UUID, uuid.UUID], report: ChaosReport
) -> None:
    rows = db.execute(
        "select id, twin_id, version, status, created_at, completed_at"
        " from ai_training_jobs where id = any(%s) order by twin_id, version",
        (list(owners),),
    ).fetchall()
    report.lost_versions = len(set(owners) - {r[0] for r in rows})
    by_twin: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_twin[row[1]].append(row)
    for twin_id, jobs in by_twin.items():
        numbers = [j[2] for j in jobs]
        if len(numbers) != len(set(numbers)):
            report.problems.append(f"twin {twin_id}: a version number given twice: {numbers}")
        for earlier, later in itertools.pairwise(jobs):
            # One on its way at a time: each version ended before the next was made.
            if earlier[5] is None or later[4] < earlier[5]:
                report.twins_with_overlapping_versions += 1
                report.problems.append(f"twin {twin_id}: versions {earlier[2]}, {later[2]} overlap")
                break
    active = db.execute(
        "select t.id, j.status, j.twin_id = t.id from twins t"
        " join ai_training_jobs j on j.id = t.active_job_id where t.id = any(%s)",
        (list(by_twin),),
    ).fetchall()
    for twin_id, status, same in active:
        if status != "completed" or not same:
            report.problems.append(f"twin {twin_id}: active version is {status}")
    if report.lost_versions:
        report.problems.append(f"{report.lost_versions} versions answered but not in the database")


def _unsettled_previews(dsn: str, owners: dict[uuid.UUID, uuid.UUID]) -> int:
    """Completed versions without their set, and pictures not final."""
    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute(
            "select (select count(*) from ai_training_jobs where id = any(%s)"
            "   and status = 'completed' and previews_requested_at is null)"
            " + (select count(*) from twin_previews where job_id = any(%s) and status = 'pending')",
            (list(owners), list(owners)),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _until_previews_settled(
    parts: Components,
    dsn: str,
    options: ChaosOptions,
    owners: dict[uuid.UUID, uuid.UUID],
    report: ChaosReport,
) -> None:
    """The sweep's previews task as the schedule runs it, half of the first few dying at a
    random step, until every completed version's previews are final."""
    rng = random.Random(options.seed + 7)
    began = time.monotonic()
    give_up = began + options.give_up_seconds

    def one_sweep() -> None:
        deadline = Deadline(options.invocation_seconds)
        crash = report.preview_crashes < options.jobs // 5 and rng.random() < options.crash_rate
        if not crash:
            sweep_previews(parts.deps(), deadline)
            return
        try:
            sweep_previews(Boundaries(rng.randrange(60)).deps(parts.deps()), deadline)
        except Crash:
            report.preview_crashes += 1

    # Two at a time: overlapping scheduled runs contend for the same pictures' claims.
    with ThreadPoolExecutor(max_workers=2) as sweeps:
        while time.monotonic() < give_up:
            if _unsettled_previews(dsn, owners) == 0:
                report.previews_settle_seconds = round(time.monotonic() - began, 1)
                return
            wait([sweeps.submit(one_sweep), sweeps.submit(one_sweep)])
            time.sleep(options.tick_seconds)
    report.problems.append(f"previews not final after {options.give_up_seconds:g} s")


def _verify_previews(
    emulator: ReplicateEmulator,
    dsn: str,
    count: int,
    owners: dict[uuid.UUID, uuid.UUID],
    report: ChaosReport,
) -> None:
    state = emulator.state
    with state.lock:
        by_picture = Counter(
            parse_qs(urlsplit(r.webhook or "").query).get("previewId", [None])[0]
            for r in state.predictions.values()
        )
    report.predictions_created = sum(by_picture.values())
    report.duplicate_predictions = by_picture.get(None, 0) + sum(
        n - 1 for picture, n in by_picture.items() if picture is not None and n > 1
    )
    if report.duplicate_predictions:
        report.problems.append(f"{report.duplicate_predictions} predictions beyond one a picture")
    with psycopg.connect(dsn, autocommit=True) as db:
        completed = [
            r[0]
            for r in db.execute(
                "select id from ai_training_jobs where id = any(%s) and status = 'completed'",
                (list(owners),),
            ).fetchall()
        ]
        pictures = db.execute(
            "select p.job_id, p.status, p.prediction_id, p.storage_path,"
            " exists (select 1 from storage.objects o where o.bucket_id = 'training-photos'"
            "         and o.name = p.storage_path)"
            " from twin_previews p where p.job_id = any(%s) and p.kind = 'completion'",
            (completed,),
        ).fetchall()
    report.previews_expected = len(completed) * count
    per_job = Counter(r[0] for r in pictures)
    short = sum(max(0, count - per_job.get(job, 0)) for job in completed)
    pending = sum(r[1] == "pending" for r in pictures)
    unstored = sum(r[1] == "ready" and not r[4] for r in pictures)
    report.previews_ready = sum(r[1] == "ready" for r in pictures)
    report.previews_failed = sum(r[1] == "failed" for r in pictures)
    report.previews_lost = short + pending + unstored
    if report.previews_lost:
        stuck = Counter(
            (r[2] is not None, emulator.prediction(r[2])["status"] if r[2] else None)
            for r in pictures
            if r[1] == "pending"
        )
        report.problems.append(
            f"previews: {short} missing from their sets, {pending} never final "
            f"((recorded, Replicate's status): {dict(stuck)}), {unstored} ready without their object"
        )
    if len(pictures) > report.previews_expected:
        report.problems.append(f"{len(pictures) - report.previews_expected} pictures too many")
    made = {r[2] for r in pictures if r[2]}
    if report.predictions_created != len(made):
        report.problems.append(
            f"{report.predictions_created} predictions, {len(made)} recorded on pictures"
        )


def _reachable(
    moves: frozenset[tuple[JobStatus, JobStatus]],
) -> frozenset[tuple[JobStatus, JobStatus]]:
    """Every (a, b) with a chain of allowed moves from a to b: the observer samples, so it may
    see pending, then training, the queued in between having come and gone."""
    reach = set(moves)
    while True:
        more = {(a, d) for a, b in reach for c, d in reach if b == c and a != d} - reach
        if not more:
            return frozenset(reach)
        reach |= more


REACHABLE = _reachable(ALLOWED_MOVES)


def _trainings_by_job(emulator: ReplicateEmulator) -> dict[str | None, list[dict[str, Any]]]:
    """Every training on the emulator, grouped by the job named in its webhook URL."""
    state = emulator.state
    with state.lock:
        owners = {
            r.id: parse_qs(urlsplit(r.webhook or "").query).get("jobId", [None])[0]
            for r in state.trainings.values()
        }
    grouped: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for training_id, job_id in owners.items():
        grouped[job_id].append(emulator.training(training_id))
    return grouped


def _verify(
    emulator: ReplicateEmulator,
    dsn: str,
    owners: dict[uuid.UUID, uuid.UUID],
    observer: Observer,
    report: ChaosReport,
) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        _verify_twins(db, owners, report)
        rows = {
            r[0]: r
            for r in db.execute(
                "select id, status, progress, replicate_training_id, replicate_model_version,"
                " error_message from ai_training_jobs where id = any(%s)",
                (list(owners),),
            ).fetchall()
        }
    problems = report.problems
    report.lost = len(observer.vanished | (set(owners) - set(rows)))
    if report.lost:
        problems.append(f"{report.lost} rows vanished")
    trainings = _trainings_by_job(emulator)
    report.trainings_created = sum(len(t) for t in trainings.values())
    report.duplicates = len(trainings.get(None, [])) + sum(
        len(t) - 1 for job, t in trainings.items() if job is not None and len(t) > 1
    )
    if report.duplicates:
        problems.append(f"{report.duplicates} trainings beyond one per job")
    for job_id, (_, status, progress, training_id, version, error) in rows.items():
        report.jobs_started += training_id is not None
        report.completed += status == "completed"
        report.failed += status == "failed"
        own = trainings.get(str(job_id), [])
        if training_id is None or [t["id"] for t in own] != [training_id]:
            problems.append(f"job {job_id}: training {training_id}, Replicate has {len(own)}")
            report.wrong_final_state += 1
            continue
        training = own[0]
        if training["status"] == "succeeded":
            right = (status, progress, version) == (
                "completed",
                100,
                training["output"]["version"],
            )
        else:
            right = status == "failed" and CHAOS_ERROR in (error or "")
        if not right:
            report.wrong_final_state += 1
            problems.append(f"job {job_id}: {status} {progress} {error!r} for {training['status']}")
    if report.jobs_started != report.trainings_created:
        problems.append(f"{report.jobs_started} jobs started, {report.trainings_created} trainings")
    for job_id, history in observer.history.items():
        report.observations += len(history)
        for (s1, p1, _), (s2, p2, _) in itertools.pairwise(history):
            moved = s1 != s2 and (JobStatus(s1), JobStatus(s2)) not in REACHABLE
            if p2 < p1 or moved:
                report.progress_regressions += 1
                problems.append(f"job {job_id}: {s1} {p1} -> {s2} {p2}")
