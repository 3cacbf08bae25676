"""``python -m bench [--smoke] [--only NAME[,NAME]] [-n N] [--bot-latency S] [--messages M] ...``

Prints one JSON line per scenario on stdout (ack, burst, throughput, crypto, memory, restart, cowhost,
soak, firstpart, compaction), then a short human summary with every target marked ok / below target.
Progress goes to stderr.
Every scenario runs under a hard deadline (``--duration``); a scenario that hits it still prints its
line, with ``"timed_out": true`` and what was measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from typing import Any

from bench.harness import Deadline, Options, rounded
from bench.report import summary_lines
from bench.scenarios import SCENARIOS

logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: the whole run takes well under 60 s"
    )
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument(
        "-n", "--customers", type=int, help="burst: customers (one message each; default 500)"
    )
    parser.add_argument("--bot-latency", type=float, help="burst: seconds per bot answer (default 1.0)")
    parser.add_argument("--messages", type=int, help="throughput: messages (default 20000)")
    parser.add_argument("--memory-messages", type=int, help="memory: messages (default 100000)")
    parser.add_argument("--soak-messages", type=int, help="soak: messages (default 1000000)")
    parser.add_argument("--soak-customers", type=int, help="soak: customers (default 50000)")
    parser.add_argument("--soak-every", type=int, help="soak: sample every N messages (default 100000)")
    parser.add_argument("--plot", metavar="PNG", help="soak: draw RSS and replies/s into this PNG file")
    parser.add_argument("--store-ids", type=int, help="compaction: finished msgids (default 1000000)")
    parser.add_argument(
        "--duration", type=float, help="hard cap in seconds per scenario (default 600; soak 3 h)"
    )
    parser.add_argument("--profile", metavar="DIR", help="run each app under cProfile, .prof files into DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    return parser.parse_args(argv)


def build_options(args: argparse.Namespace) -> Options:
    opts = Options.smoke_sizes() if args.smoke else Options()
    if args.customers is not None:
        opts.customers = max(1, args.customers)
    if args.bot_latency is not None:
        opts.bot_latency = max(0.0, args.bot_latency)
    if args.messages is not None:
        opts.messages = max(1, args.messages)
    if args.memory_messages is not None:
        opts.memory_messages = max(1, args.memory_messages)
    if args.soak_messages is not None:
        opts.soak_messages = max(1, args.soak_messages)
    if args.soak_customers is not None:
        opts.soak_customers = max(1, args.soak_customers)
    if args.soak_every is not None:
        opts.soak_every = max(1, args.soak_every)
    if args.store_ids is not None:
        opts.store_ids = max(1, args.store_ids)
    if args.plot:
        opts.plot_path = args.plot
    if args.duration is not None:
        opts.duration = opts.soak_duration = max(1.0, args.duration)
    if args.profile:
        opts.profile_dir = args.profile
    return opts


def selected(only: str | None) -> list[str]:
    if not only:
        return list(SCENARIOS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return names


def run_one(name: str, opts: Options) -> dict[str, Any]:
    deadline = Deadline(opts.soak_duration if name == "soak" else opts.duration)
    started = time.monotonic()
    try:
        result = SCENARIOS[name].run(opts, deadline)
    except Exception as exc:  # one broken scenario must not hide the others' figures
        logger.debug("scenario %s failed:\n%s", name, traceback.format_exc())
        result = {
            "scenario": name,
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "timed_out": deadline.expired(),
        }
    result.setdefault("timed_out", deadline.expired())
    result["smoke"] = opts.smoke
    result["wall_s"] = rounded(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    opts = build_options(args)
    results = []
    for name in selected(args.only):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = run_one(name, opts)
        results.append(result)
        print(json.dumps(result, ensure_ascii=False, sort_keys=False), flush=True)
    for line in summary_lines(results):
        print(line, flush=True)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
