#!/usr/bin/env python3
"""Profile one pipeline step with py-spy and print where its CPU time goes, per process.

    .venv/bin/python scripts/bench_profile.py --scale 100 --step extract-csv
    .venv/bin/python scripts/bench_profile.py --scale 1 --step pipeline       # a whole small day

Runs `nwelt run <step>` on the scaled source of scripts/bench.py (built first if missing) under
`py-spy record --subprocesses` (every Python process of the step: Meltano, the tap, the target,
the glue, dbt) and prints, for each process, its share of the sampled CPU time and its
hottest functions (self time). The raw samples are kept in data/bench/profiles/ (the folded
format of flamegraph.pl / speedscope). Like bench.py it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import generate_scaled  # noqa: E402
from bench import STEPS, scale_arg, warehouse_name  # noqa: E402

RATE = 100  # samples per second


def process_name(frame: str) -> str:
    """`process 123:"/x/venv/bin/python /x/venv/bin/target-jsonl --config ..."` -> `target-jsonl`."""
    command = frame.split(":", 1)[1].strip('"')
    if not command:  # py-spy may not read the command line of the process it started
        return "nwelt (the step runner)"
    words = [Path(w).name for w in command.split() if not w.startswith("-")]
    if words and words[0].startswith("python"):
        words = words[1:]
    name = words[0] if words else command
    if name == "nwelt" and len(words) > 2:
        name = "nwelt " + " ".join(words[1:3])
    return name


def step_arg(raw: str) -> str:
    """--step, given as `make bench-profile STEP=...`: errors name STEP."""
    if raw not in [*STEPS, "pipeline"]:
        raise argparse.ArgumentTypeError(f"STEP={raw!r} is not a step: use one of {', '.join([*STEPS, 'pipeline'])}")
    return raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=scale_arg, required=True)
    parser.add_argument("--step", type=step_arg, required=True, help="a step, or the whole pipeline of a day")
    parser.add_argument("--date", default="2024-01-01")
    parser.add_argument("--top", type=int, default=8, help="functions shown per process")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: .venv/bin/python -m pip install py-spy")

    generate_scaled.build_database(args.scale)
    generate_scaled.build_csv(args.scale, ROOT / "data" / "source" / "order_details.csv")
    env = dict(os.environ)
    env.update(
        {
            "DATA_DIR": str(ROOT / "data" / "bench" / f"k{args.scale}"),
            "SOURCE_PG_DATABASE": generate_scaled.database_name(args.scale),
            "WAREHOUSE_PG_DATABASE": warehouse_name(args.scale),
            "ORDER_DETAILS_CSV": str(generate_scaled.csv_path(args.scale)),
        }
    )
    out_dir = ROOT / "data" / "bench" / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    folded = out_dir / f"{args.step}-k{args.scale}.folded"
    started = time.monotonic()
    subprocess.run(
        [
            spy,
            "record",
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--output",
            str(folded),
            "--",
            str(ROOT / ".venv" / "bin" / "nwelt"),
            *(["pipeline"] if args.step == "pipeline" else ["run", args.step]),
            "--date",
            args.date,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.monotonic() - started

    per_process: collections.Counter[str] = collections.Counter()
    hot: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        functions = [f for f in frames if not f.startswith("process ")]
        name = process_name(processes[-1]) if processes else "?"
        per_process[name] += int(count)
        if functions:
            hot[name][re.sub(r" \(/.*?site-packages/", " (", functions[-1])] += int(count)
    total = sum(per_process.values())
    print(
        f"{args.step} at scale {args.scale}: {wall:.1f} s wall, {total / RATE:.1f} s of sampled CPU "
        f"({total} samples at {RATE} Hz, all processes); raw samples: {folded.relative_to(ROOT)}"
    )
    for name, count in per_process.most_common():
        print(f"\n{100 * count / total:5.1f} %  {count / RATE:7.1f} s  {name}")
        for function, n in hot[name].most_common(args.top):
            print(f"          {100 * n / count:5.1f} %  {function[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
