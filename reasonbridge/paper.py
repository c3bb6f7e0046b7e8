"""`make paper`: every table and figure of the paper on the embedded organism, three seeds, then the
report: `python -m reasonbridge.paper [--seeds 0,1,2] [--only table2,scaling] [overrides ...]`.

Each sweep of `PLAN` runs as `python run.py -m experiment=<name> seed=<seeds> ...` in a child process
(one at a time: two torch processes on two cores slow each other far more than twice), its output
kept in `<log-dir>/<name>.log`; this process prints one line per finished row (row k of N, elapsed,
estimated time left), so a log under SLURM or CI stays short. Stages are cached, so rows shared by
tables (the trained student of Table 1, 3, 4 and Figure 4) are computed once, and a run killed and
started again recomputes nothing that finished. It ends with `python -m reasonbridge.report` and
the report's path.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from reasonbridge.config import CONF_DIR

ROOT = CONF_DIR.parent


@dataclass(frozen=True)
class Sweep:
    experiment: str  # conf/experiment/<name>.yaml
    args: tuple[str, ...] = field(default_factory=tuple)  # its overrides beyond the experiment's own
    what: str = ""


# The paper's tables on the organism, in the order that shares the most: Table 1's students first
# (Table 4 and Figure 4 reuse the default student's training), then the ablations, then Table 3,
# whose rows are trainings Table 2 made.
PLAN = (
    Sweep("table1", ("model=tiny_small,tiny,tiny_large",), "Table 1: three organism students"),
    Sweep("table4", (), "Table 4: generalization"),
    Sweep("scaling", (), "Figure 4: test-time scaling"),
    Sweep("table2", (), "Table 2: ablations"),
    Sweep("table3", (), "Table 3: implementation details"),
    Sweep("bridge", (), "BRIDGE: accuracy per teacher query (budget curve)"),
    Sweep("provenance", (), "Provenance tracing: where each sentence came from"),
)

_ROW_DONE = re.compile(r"^\[(?P<name>[^\]]+)\] (acc/|stopped after)")
_JOB_FAILED = re.compile(r"^error: ")


def _values(override: str) -> int:
    """How many jobs a `key=a,b,c` override sweeps over (1 for a plain one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    parsed = OverridesParser.create().parse_override(override)
    return len(list(parsed.sweep_string_iterator())) if parsed.is_sweep_override() else 1


def jobs_of(sweep: Sweep, seeds: list[int], extra: list[str]) -> int:
    """The number of runs a sweep makes: its experiment's swept params times its own and the extra
    overrides' sweeps times the seeds (a key given again overrides the experiment's)."""
    params = OmegaConf.select(OmegaConf.load(CONF_DIR / "experiment" / f"{sweep.experiment}.yaml"),
                              "hydra.sweeper.params") or {}
    overrides = {k: f"{k}={v}" for k, v in params.items()}
    for o in (*sweep.args, *extra):
        overrides[o.split("=", 1)[0].lstrip("+~")] = o
    overrides["seed"] = "seed=" + ",".join(map(str, seeds))
    return math.prod(_values(o) for o in overrides.values())


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def run_plan(plan, seeds: list[int], extra: list[str], log_dir: Path, python: str = sys.executable,
             out=sys.stdout) -> list[str]:
    """Run every sweep; returns the sweeps that failed (their log names the error)."""
    total = sum(jobs_of(s, seeds, extra) for s in plan)
    log_dir.mkdir(parents=True, exist_ok=True)
    done, failed, start = 0, [], time.monotonic()
    print(f"paper: {len(plan)} sweeps, {total} runs, seeds {','.join(map(str, seeds))}; logs in {log_dir}",
          file=out, flush=True)
    for sweep in plan:
        log_path = log_dir / f"{sweep.experiment}.log"
        cmd = [python, str(ROOT / "run.py"), "-m", f"experiment={sweep.experiment}",
               "seed=" + ",".join(map(str, seeds)), *sweep.args, *extra, "progress=false"]
        print(f"paper: {sweep.what or sweep.experiment}: {' '.join(cmd[2:])}", file=out, flush=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "w", buffering=1) as log, subprocess.Popen(  # line-buffered: `tail -f` follows it
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
            errors = []
            for line in proc.stdout:
                log.write(line)
                if _JOB_FAILED.match(line):
                    errors.append(line.strip())
                m = _ROW_DONE.match(line)
                if m:
                    done += 1
                    elapsed = time.monotonic() - start
                    left = elapsed / done * max(total - done, 0)
                    print(f"paper: row {done} of {total} ({sweep.experiment}: {m['name']}), "
                          f"{_clock(elapsed)} elapsed, about {_clock(left)} left", file=out, flush=True)
            proc.wait()
        if proc.returncode != 0:
            failed.append(sweep.experiment)
            print(f"paper: {sweep.experiment} failed (exit {proc.returncode})"
                  + (f": {errors[-1]}" if errors else "") + f"; its log: {log_path}", file=out, flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--only", default=None,
                        help="comma-separated experiments of the plan to run (default: all: "
                             + ",".join(s.experiment for s in PLAN) + ")")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "outputs" / "paper", help="where each sweep's log goes")
    parser.add_argument("--no-report", action="store_true", help="skip building the report at the end")
    parser.add_argument("--report-out", type=Path, default=ROOT / "reports", help="the report's folder (default: reports/)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every sweep")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give integers separated by commas, e.g. 0,1,2")
    plan = PLAN
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in {s.experiment for s in PLAN}]
        if unknown:
            parser.error(f"--only {','.join(unknown)}: not in the plan ({', '.join(s.experiment for s in PLAN)})")
        plan = tuple(s for s in PLAN if s.experiment in names)
    start = time.monotonic()
    failed = run_plan(plan, seeds, list(args.overrides), args.log_dir)
    if not args.no_report:
        report = subprocess.run([sys.executable, "-m", "reasonbridge.report", "--out", str(args.report_out)], cwd=ROOT)
        if report.returncode != 0:
            failed.append("report")
        else:
            print(f"paper: report in {args.report_out / 'README.md'}", flush=True)
    print(f"paper: {_clock(time.monotonic() - start)} in all"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
