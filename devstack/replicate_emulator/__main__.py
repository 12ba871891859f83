"""Run the emulator on its own: `python -m devstack.replicate_emulator --port 8787`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading

from devstack.replicate_emulator.server import ReplicateEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument(
        "--api-token", default=os.environ.get("REPLICATE_EMULATOR_TOKEN", "r8_local")
    )
    parser.add_argument("--webhook-secret", default=os.environ.get("REPLICATE_WEBHOOK_SECRET"))
    parser.add_argument("--owner", default="flurrty")
    parser.add_argument("--boot-seconds", type=float, default=0.5)
    parser.add_argument("--train-seconds", type=float, default=3.0)
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    parser.add_argument("--predict-boot-seconds", type=float, default=0.1)
    parser.add_argument("--predict-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)

    emulator = ReplicateEmulator(
        api_token=args.api_token,
        webhook_secret=args.webhook_secret,
        owner=args.owner,
        port=args.port,
        boot_seconds=args.boot_seconds,
        train_seconds=args.train_seconds,
        latency_seconds=args.latency_seconds,
        predict_boot_seconds=args.predict_boot_seconds,
        predict_seconds=args.predict_seconds,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with emulator:
        # One JSON line so a parent process can read where we listen and the secret.
        line = {"base_url": emulator.base_url, "webhook_secret": emulator.webhook_secret}
        print(json.dumps(line), flush=True)
        done.wait()


if __name__ == "__main__":
    main()
