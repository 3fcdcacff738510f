"""``larkps throttle dag|running``: DAGMan concurrency limits from measured bandwidth."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from larkps.apply.dagfile import DagError, DagTree, load_dag, rewrite_maxjobs
from larkps.cli.commands.common import (
    Subparsers,
    add_command,
    category_arg,
    count_arg,
    duration_arg,
    flag_errors,
    rate_arg,
    site_arg,
    size_arg,
    warn_problems,
)
from larkps.config.settings import Settings, ThrottleSettings, load_settings
from larkps.decide.throttle import (
    Capacity,
    Demand,
    ThrottlePolicy,
    candidates,
    decide,
    given_capacity,
    site_capacity,
)
from larkps.errors import LarkpsError, UsageError
from larkps.model import EGRESS, INGRESS, BandwidthEstimate, Family, ThrottleDecision


def register(commands: Subparsers) -> None:
    group = add_command(
        commands,
        "throttle",
        _missing_action,
        "turn measured bandwidth into DAGMan concurrency limits (dag, running)",
        "larkps throttle dag transfers.dag --category xfer --source-site CERN --bytes-per-job 2GB",
    )
    actions = group.add_subparsers(dest="throttle_action", required=True, metavar="ACTION")
    _add_dag(actions)
    _add_running(actions)


def _missing_action(args: argparse.Namespace) -> int:
    raise UsageError("throttle: name an action: dag or running")


def _add_dag(actions: Subparsers) -> None:
    sub = add_command(
        actions,
        "dag",
        cmd_dag,
        "write MAXJOBS for one category of a DAG file (to stdout, or --in-place with a backup)",
        "larkps throttle dag transfers.dag --category xfer --source-site CERN"
        " --dest-site UNL --bytes-per-job 2GB --config /etc/larkps/larkps.toml --in-place",
    )
    sub.add_argument("file", type=Path, help="the DAG file")
    sub.add_argument("--category", required=True, type=category_arg, help="category to throttle")
    sub.add_argument(
        "--in-place", action="store_true", help="rewrite FILE (backup: FILE.bak, or FILE.bak.N)"
    )
    _add_inputs(sub)


def _add_running(actions: Subparsers) -> None:
    sub = add_command(
        actions,
        "running",
        cmd_running,
        "set the global node throttle of running DAGMans (dry run unless --apply)",
        "larkps throttle running 1234 --source-site CERN --per-job-rate 100Mbit"
        " --bandwidth 10Gbit --apply",
    )
    sub.add_argument(
        "cluster_ids",
        nargs="*",
        type=_cluster_id,
        metavar="CLUSTER_ID",
        help="DAGMan job(s) to change (needed only with --apply)",
    )
    sub.add_argument(
        "--previous", type=count_arg, help="current max_nodes, for steps (default: DAGMan_MaxJobs)"
    )
    sub.add_argument("--apply", action="store_true", help="send the throttle (default: dry run)")
    _add_inputs(sub)


def _add_inputs(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--source-site", type=site_arg, help="site the data comes from (needed unless --bandwidth)"
    )
    sub.add_argument("--dest-site", type=site_arg, help="site the jobs run at (default: any)")
    demand = sub.add_mutually_exclusive_group(required=True)
    demand.add_argument("--bytes-per-job", type=size_arg, help="data each job moves, e.g. 2GB")
    demand.add_argument("--per-job-rate", type=rate_arg, help="rate each job needs, e.g. 100Mbit")
    sub.add_argument("--transfer-time", type=duration_arg, help="with --bytes-per-job (10m)")
    sub.add_argument("--bandwidth", type=rate_arg, help="use this bandwidth, not a measurement")
    sub.add_argument("--consumers", type=count_arg, help="users sharing the bottleneck (1)")
    sub.add_argument("--family", choices=[f.value for f in Family], help="address family")
    sub.add_argument("--config", type=Path, help="TOML configuration (policy, archives)")
    sub.add_argument("--window", type=duration_arg, help="statistics window, e.g. 24h")


def _cluster_id(text: str) -> int:
    return count_arg(text.removesuffix(".0"))


def cmd_dag(args: argparse.Namespace) -> int:
    tree = load_dag(args.file)
    _check_dag_category(tree, args.category)
    previous = tree.maxjobs(args.category)
    decision = compute_decision(
        args, previous.value if previous else None, consumers=args.consumers or 1
    )
    _require_jobs(decision, f"MAXJOBS {args.category} 0")
    with flag_errors({"category": "--category"}):
        text = rewrite_maxjobs(tree, args.category, decision.jobs)
    was = "unset, so not stepped" if previous is None else f"{previous.value} at {previous.where}"
    change = f"MAXJOBS {args.category} {decision.jobs} (was {was})"
    if not args.in_place:
        sys.stdout.write(text)
        print(f"larkps: {change}; {decision.rationale}", file=sys.stderr)
        return 0
    if text == tree.top.text:
        print(f"{args.file}: {change}; unchanged")
    else:
        backup = replace_with_backup(args.file, tree.top.text, text)
        print(f"{args.file}: {change}; backup in {backup}")
    print(decision.rationale)
    return 0


def replace_with_backup(path: Path, old: str, new: str) -> Path:
    """Save `old` to the first free FILE.bak, FILE.bak.1, ...; then replace FILE by `new`.

    An existing backup is never overwritten. The new file keeps the original's
    mode (and owner, when run as root), so the DAG's owner can still submit it.
    """
    try:
        like = path.stat()
        backup = _new_backup(path, old, like)
        _replace(path, new, like)
    except OSError as exc:
        raise LarkpsError(f"{exc.filename or path}: cannot write ({exc.strerror})") from None
    return backup


def _new_backup(path: Path, text: str, like: os.stat_result) -> Path:
    for number in range(10000):
        backup = path.with_name(path.name + ".bak" + (f".{number}" if number else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, like.st_mode & 0o7777)
        except FileExistsError:
            continue
        _write_fd(fd, text, like)
        return backup
    raise LarkpsError(f"{path}: 10000 backups exist already, remove some")


def _replace(path: Path, text: str, like: os.stat_result) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _write_fd(fd, text, like)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_fd(fd: int, text: str, like: os.stat_result) -> None:
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        os.fchmod(fd, like.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.fchown(fd, like.st_uid, like.st_gid)
        handle.write(text)
        handle.flush()
        os.fsync(fd)


def _check_dag_category(tree: DagTree, category: str) -> None:
    """A local category must be used in the DAG's scope; a +global one anywhere in it."""
    if category.startswith("+"):
        known = tree.global_categories()
        what = "no node of it or its splices"
    else:
        known = set(tree.categories()) | {p.statement.words[1] for p in tree.statements("MAXJOBS")}
        what = "no node"
    if category not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise DagError(
            f"--category: {tree.top.source} puts {what} in {category!r} (categories: {listed})"
        )
    if tree.splices and not category.startswith("+"):
        names = ", ".join(name for name, _ in tree.splices)
        print(
            f"larkps: note: {tree.top.source} splices {names}; their own categories are"
            f" scoped to the splice, use +{category} for one limit across splices",
            file=sys.stderr,
        )


def _require_jobs(decision: ThrottleDecision, what: str) -> None:
    if decision.jobs < 1:
        raise LarkpsError(f"no room for a single job, not writing {what}: {decision.rationale}")


def cmd_running(args: argparse.Namespace) -> int:
    from larkps.apply.dagman import set_node_throttle

    if args.apply and not args.cluster_ids:
        raise UsageError("--apply: name the DAGMan cluster id(s) to change")
    dags = max(1, len(args.cluster_ids))
    if args.consumers is not None and args.consumers < dags:
        raise UsageError(f"--consumers: at least the number of DAGs ({dags}), got {args.consumers}")
    decide_from = decider(args, consumers=args.consumers or dags)
    if not args.cluster_ids:
        decision = decide_from(args.previous)
        _require_jobs(decision, "max_nodes 0 (which DAGMan reads as unlimited)")
        print(decision.rationale)
        print(f"max_nodes = {decision.jobs} per DAG (dry run; name CLUSTER_IDs and --apply to set)")
        return 0
    now = _current_throttles(args.cluster_ids, args.previous)
    decisions = {c: decide_from(previous) for c, (previous, _) in now.items()}
    for decision in decisions.values():  # refuse before anything is sent
        _require_jobs(decision, "max_nodes 0 (which DAGMan reads as unlimited)")
    for rationale in dict.fromkeys(d.rationale for d in decisions.values()):
        print(rationale)
    failed = 0
    for cluster_id, decision in decisions.items():
        was = now[cluster_id][1]
        if not args.apply:
            print(f"DAGMan {cluster_id}: would set max_nodes = {decision.jobs}{was} (dry run)")
            continue
        answer = set_node_throttle(cluster_id, decision.jobs)
        status = "set" if answer.ok else "FAILED"
        print(f"DAGMan {cluster_id}: max_nodes = {decision.jobs} {status}{was}: {answer.text}")
        failed += not answer.ok
    return 1 if failed else 0


def _current_throttles(
    cluster_ids: list[int], given: int | None
) -> dict[int, tuple[int | None, str]]:
    """Each DAGMan's max_nodes now (None: unlimited or unknown) and how to say it.

    --previous, when given, stands for all of them; otherwise each DAGMan's job ad
    is read, so that a cron run moves a running DAG by at most one step.
    """
    from larkps.apply.dagman import current_node_throttle

    if given is not None:
        return dict.fromkeys(cluster_ids, (given, ""))
    found: dict[int, tuple[int | None, str]] = {}
    for cluster_id in cluster_ids:
        current = current_node_throttle(cluster_id)
        if current.problem:
            print(
                f"larkps: note: DAGMan {cluster_id}: cannot read DAGMan_MaxJobs"
                f" ({current.problem}); not stepped (give --previous)",
                file=sys.stderr,
            )
            found[cluster_id] = (None, "")
        else:
            found[cluster_id] = (current.max_nodes, f" (was {current.max_nodes or 'unlimited'})")
    return found


def compute_decision(
    args: argparse.Namespace, previous: int | None, consumers: int
) -> ThrottleDecision:
    """Policy from --config (or defaults), demand from the options, capacities measured or given."""
    return decider(args, consumers)(previous)


def decider(args: argparse.Namespace, consumers: int) -> Callable[[int | None], ThrottleDecision]:
    """The decision for any previous N, with the inputs read (or measured) once."""
    settings = load_settings(args.config) if args.config else None
    throttle = settings.throttle if settings else ThrottleSettings()
    policy = throttle.policy
    try:
        demand = Demand(
            per_job_bps=args.per_job_rate,
            bytes_per_job=args.bytes_per_job,
            transfer_time=args.transfer_time or throttle.transfer_time,
            consumers=consumers,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    capacities = _capacities(args, settings, throttle, policy)
    return lambda previous: decide(capacities, demand, policy, previous)


def _capacities(
    args: argparse.Namespace,
    settings: Settings | None,
    throttle: ThrottleSettings,
    policy: ThrottlePolicy,
) -> list[Capacity]:
    configured = throttle.capacities
    if args.bandwidth is not None:
        found = [given_capacity(args.bandwidth)]
        ends = [(args.source_site, EGRESS), (args.dest_site, INGRESS)]
        for site, direction in ends:
            if (site, direction) in configured:
                found.append(
                    site_capacity(site, direction, [], policy, configured[(site, direction)])
                )
        return found
    if settings is None:
        raise UsageError(
            "--bandwidth or --config: give a bandwidth, or a configuration to measure it"
        )
    if args.source_site is None:
        raise UsageError("--source-site: needed to measure the bandwidth (or give --bandwidth)")
    estimates = cycle_estimates(settings, args.window, args.family)
    _check_sites(estimates, args.source_site, args.dest_site)
    return candidates(estimates, policy, args.source_site, args.dest_site, configured)


def cycle_estimates(
    settings: Settings, window: int | None, family: str | None
) -> list[BandwidthEstimate]:
    """One cycle (nothing published): its bandwidth estimates, the figures the ads carry."""
    from larkps.pipeline import run_cycle
    from larkps.stats.estimates import window_estimates

    result = run_cycle(settings, int(time.time()), window, publish=False)
    warn_problems(result.report)
    by_path = window_estimates(result.stats, result.estimates, settings.windows.stale_after)
    return [e for e in by_path.values() if family is None or e.path.family.value == family]


def _check_sites(estimates: list[BandwidthEstimate], source: str, destination: str | None) -> None:
    sources = {e.path.source_site for e in estimates}
    destinations = {e.path.destination_site for e in estimates}
    if source not in sources:
        raise UsageError(f"--source-site: no measured paths from {source!r} ({_sites(sources)})")
    if destination is not None and destination not in destinations:
        raise UsageError(
            f"--dest-site: no measured paths to {destination!r} ({_sites(destinations)})"
        )


def _sites(names: set[str]) -> str:
    return "sites: " + (", ".join(sorted(names)) or "none")
