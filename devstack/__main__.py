"""`python -m devstack run|up|down|serve`: the local stack from the command line (see README)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.stack import LocalStack, StackOptions, fresh_data_dir

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
ENV_FILE = LOCAL / "stack.env"
PID_FILE = LOCAL / "stack.pid"
LOG_FILE = LOCAL / "stack.log"


def _options(data_dir: Path) -> StackOptions:
    real = (
        os.environ.get("REPLICATE_API_TOKEN") if not os.environ.get("REPLICATE_BASE_URL") else None
    )
    return StackOptions(data_dir=data_dir, real_replicate_token=real or None)


def cmd_run(_: argparse.Namespace) -> int:
    from devstack.demo import run_flow

    options = _options(fresh_data_dir(LOCAL / "run"))
    real = options.real_replicate_token is not None
    print(
        "starting the local stack" + (" (training on the real Replicate)" if real else "") + " ..."
    )
    started = time.monotonic()
    with LocalStack(options) as stack:
        print(f"stack up in {time.monotonic() - started:.1f}s: Supabase at {stack.supabase_url}")
        if stack.playground is not None:
            print(f"playground (while the flow runs): {stack.playground.url}")
        result = run_flow(stack.stack_env(), timeout_seconds=3600 if real else 120)
    print(f"stack stopped; flow took {result.seconds:.1f}s")
    if result.status != "completed":
        print(
            f"FAILED: job {result.job_id} ended {result.status}: {result.error_message}",
            file=sys.stderr,
        )
        return 1
    print(f"completed: job {result.job_id}, model version {result.model_version}")
    return 0


def cmd_serve(_: argparse.Namespace) -> int:
    """Foreground stack for `up`: writes the env file and runs until SIGTERM."""
    stop = False

    def _terminate(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    with LocalStack(_options(fresh_data_dir(LOCAL / "up"))) as stack:
        lines = [f"export {k}={shlex.quote(v)}" for k, v in stack.stack_env().items()]
        ENV_FILE.write_text("\n".join(lines) + "\n")
        while not stop:
            time.sleep(0.2)
    ENV_FILE.unlink(missing_ok=True)
    return 0


def _running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def cmd_up(_: argparse.Namespace) -> int:
    if _running_pid():
        print("the stack is already up (make down stops it)")
        print(ENV_FILE.read_text() if ENV_FILE.exists() else "")
        return 0
    LOCAL.mkdir(exist_ok=True)
    ENV_FILE.unlink(missing_ok=True)
    with LOG_FILE.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + 90
    while not ENV_FILE.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print(
                f"the stack did not start; see {LOG_FILE}:\n{LOG_FILE.read_text()[-3000:]}",
                file=sys.stderr,
            )
            process.kill()
            return 1
        time.sleep(0.2)
    env = ENV_FILE.read_text()
    print(f"stack up (pid {process.pid}); `source {ENV_FILE.relative_to(ROOT)}` to use it:")
    print(env)
    for line in env.splitlines():
        if line.startswith("export PLAYGROUND_URL="):
            print(f"playground: open {shlex.split(line.partition('=')[2])[0]} in a browser")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    pid = _running_pid()
    if pid is None:
        print("the stack is not running")
        PID_FILE.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    for _attempt in range(150):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    print("stack stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("run", cmd_run), ("up", cmd_up), ("down", cmd_down), ("serve", cmd_serve)):
        sub.add_parser(name).set_defaults(func=func)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
