"""``larkps plan``: can a volume move from one site to another by a deadline?"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from larkps.apply.dagfile import parse_dag, set_maxjobs
from larkps.cli.commands.common import (
    Subparsers,
    add_command,
    category_arg,
    count_arg,
    duration_arg,
    flag_errors,
    site_arg,
    size_arg,
)
from larkps.cli.commands.throttle import cycle_estimates
from larkps.config.settings import load_settings
from larkps.decide.advise import Advice
from larkps.decide.plan import Plan, Request, plan_all, plan_path
from larkps.errors import UsageError
from larkps.model import BandwidthEstimate, Family
from larkps.publish.submit import site_lines
from larkps.units import format_rate, format_size

ANY = "any"
PLAN_FLAGS = {
    "bytes": "--bytes",
    "deadline": "--deadline",
    "files": "--files",
    "bytes_per_job": "--bytes-per-job",
    "transfer_time": "--transfer-time",
    "consumers": "--consumers",
}


def register(commands: Subparsers) -> None:
    sub = add_command(
        commands,
        "plan",
        cmd_plan,
        "can a volume move between sites by a deadline: jobs, rate, completion, MAXJOBS",
        "larkps plan --from ALPHA-T2 --to BRAVO-T1 --bytes 2TB --deadline 6h"
        " --bytes-per-job 2GB --config /etc/larkps/larkps.toml",
    )
    sub.add_argument("--from", dest="source", required=True, type=site_arg, help="the data's site")
    sub.add_argument(
        "--to", dest="destination", required=True, type=_destination, help="execute site, or any"
    )
    sub.add_argument("--bytes", required=True, type=size_arg, help="volume to move, e.g. 2TB")
    sub.add_argument("--deadline", required=True, type=duration_arg, help="e.g. 6h")
    split = sub.add_mutually_exclusive_group()
    split.add_argument("--files", type=count_arg, help="number of jobs (one file each)")
    split.add_argument("--bytes-per-job", type=size_arg, help="data each job moves (2GB)")
    sub.add_argument("--config", required=True, type=Path, help="TOML configuration")
    sub.add_argument("--transfer-time", type=duration_arg, help="per job (config: 10m)")
    sub.add_argument("--consumers", type=count_arg, help="users sharing the bottleneck (1)")
    sub.add_argument("--family", choices=[f.value for f in Family], help="address family")
    sub.add_argument("--window", type=duration_arg, help="statistics window, e.g. 24h")
    sub.add_argument("--category", type=category_arg, default="xfer", help="DAG category (xfer)")
    sub.add_argument("--format", choices=("table", "json"), default="table")


def _destination(text: str) -> str:
    return ANY if text == ANY else site_arg(text)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.destination == args.source:
        raise UsageError("--to: the data's own site reads over the LAN; name another site")
    settings = load_settings(args.config)
    throttle = settings.throttle
    with flag_errors(PLAN_FLAGS):
        request = Request(
            source_site=args.source,
            total_bytes=args.bytes,
            deadline_s=args.deadline,
            now=int(time.time()),
            files=args.files,
            bytes_per_job=args.bytes_per_job,
            transfer_time=args.transfer_time or throttle.transfer_time,
            consumers=args.consumers or 1,
        )
    estimates = cycle_estimates(settings, args.window, args.family)
    chosen = None if args.destination == ANY else args.destination
    _check_sites(estimates, args.source, chosen)
    ranked = plan_all(request, estimates, throttle.policy, throttle.capacities)
    if chosen is not None:
        best = plan_path(request, chosen, estimates, throttle.policy, throttle.capacities)
    elif ranked:
        best = ranked[0]
    else:
        raise UsageError(f"--from: no measured paths from {args.source!r} to another site")
    others = [p for p in ranked if p.destination_site != best.destination_site]
    with flag_errors(PLAN_FLAGS):
        ready = ready_lines(best, args.category, settings.windows.stale_after)
    if args.format == "json":
        print(json.dumps(plan_document(best, others, ready), indent=1))
    else:
        print(plan_text(best, others, ready))
    return 0


def _check_sites(estimates: list[BandwidthEstimate], source: str, destination: str | None) -> None:
    """Refuse sites no measured path starts from or ends at, naming the known ones."""
    for flag, site, end in (("--from", source, 0), ("--to", destination, 1)):
        known = {(e.path.source_site, e.path.destination_site)[end] for e in estimates}
        if site is not None and site not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise UsageError(f"{flag}: no measured paths with site {site!r} (sites: {listed})")


def ready_lines(plan: Plan, category: str, stale_after: int) -> dict[str, list[str]]:
    """The DAG's MAXJOBS line and the submit-file lines, empty when no job fits."""
    if plan.decision.jobs < 1:
        return {"dag": [], "submit": []}
    maxjobs = set_maxjobs(parse_dag(""), category, plan.decision.jobs).rstrip("\n")
    per_job_s = max(1, math.ceil(plan.job_s)) if math.isfinite(plan.job_s) else None
    advice = Advice(plan.source_site, plan.bytes_per_job, per_job_s, stale_after, ())
    submit = site_lines(advice, plan.destination_site)
    return {"dag": [f"CATEGORY ALL_NODES {category}", maxjobs], "submit": submit}


def plan_document(best: Plan, others: list[Plan], ready: dict[str, list[str]]) -> dict[str, Any]:
    """The plan, the ranked alternatives and the ready lines as one JSON document."""
    return {
        **_plan_fields(best),
        "maxjobs": ready["dag"],
        "submit": ready["submit"],
        "alternatives": [_plan_fields(p) for p in others],
    }


def _plan_fields(plan: Plan) -> dict[str, Any]:
    fields = asdict(plan)
    fields["parallel"] = plan.parallel
    fields["aggregate_bps"] = plan.aggregate_bps
    for key in ("job_s", "completion_s", "expected_s", "earliest_s"):
        fields[key] = fields[key] if math.isfinite(fields[key]) else None
    return fields


def plan_text(best: Plan, others: list[Plan], ready: dict[str, list[str]]) -> str:
    verdict = "FEASIBLE" if best.feasible else ("UNTRUSTED" if not best.trusted else "NOT FEASIBLE")
    head = (
        f"plan: {format_size(best.total_bytes)} from {best.source_site} to"
        f" {best.destination_site} within {_when(best.deadline_s)}: {verdict}"
    )
    rows = _rows(best)
    width = max(len(label) for label, _, _ in rows)
    lines = [head, *(f"  {label.ljust(width)}  {value}  <- {why}" for label, value, why in rows)]
    if others:
        lines += ["", "other destinations, ranked:", *_ranked(others)]
    if ready["dag"]:
        lines += ["", "# DAG file:", *ready["dag"], "", "# submit file:", *ready["submit"]]
    return "\n".join(_printable(line) for line in lines)


def _rows(plan: Plan) -> list[tuple[str, str, str]]:
    why, d = plan.rationale, plan.decision
    rows = [
        ("feasible", "yes" if plan.feasible else "no", why["feasible"]),
        ("jobs", str(plan.jobs_total), why["jobs"]),
        ("parallel", f"N = {d.jobs}", why["parallel"]),
        ("per-job rate", f"R = {format_rate(d.per_job_bps)}", why["per_job"]),
        ("completion", _when(plan.completion_s), why["completion"]),
        ("range", f"{_when(plan.earliest_s)} .. {_when(plan.completion_s)}", why["range"]),
        ("bottleneck", d.bottleneck, why["bottleneck"]),
        ("quality", _quality(plan), why["quality"]),
    ]
    if "largest" in why and plan.largest_bytes is not None:
        rows.append(("largest volume", format_size(plan.largest_bytes), why["largest"]))
        rows.append(("deadline needed", _when(plan.deadline_needed_s), why["deadline_needed"]))
    return rows


def _ranked(plans: list[Plan]) -> list[str]:
    out = []
    for number, plan in enumerate(plans, start=1):
        rank = str(number) if plan.trusted else "-"
        status = "ok" if plan.feasible else ("untrusted" if not plan.trusted else "MISS")
        out.append(
            f"  {rank:>2}  {plan.destination_site:<20} {_when(plan.completion_s):>10}  {status:<9}"
            f" N={plan.decision.jobs} R={format_rate(plan.decision.per_job_bps)}"
            f" bottleneck {plan.decision.bottleneck}"
        )
    return out


def _quality(plan: Plan) -> str:
    return "-" if plan.bottleneck.quality is None else f"{plan.bottleneck.quality:.2f}"


def _when(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "never"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)
