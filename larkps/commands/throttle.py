"""``larkps throttle dag|running``: DAGMan concurrency limits from measured bandwidth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from larkps.commands.common import (
    Subparsers,
    add_command,
    duration_arg,
    rate_arg,
    size_arg,
)
from larkps.config import NAME_PATTERN, Settings, ThrottleSettings, load_settings
from larkps.dag import DagError, DagFile, check_category, parse_dag, set_maxjobs
from larkps.errors import LarkpsError, UsageError
from larkps.model import BandwidthEstimate, Family, ThrottleDecision
from larkps.publish import write_atomically
from larkps.throttle import (
    EGRESS,
    INGRESS,
    Capacity,
    Demand,
    ThrottlePolicy,
    candidates,
    decide,
    given_capacity,
    site_capacity,
)


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
    sub.add_argument("--category", required=True, type=_category, help="category to throttle")
    sub.add_argument("--in-place", action="store_true", help="rewrite FILE (backup: FILE.bak)")
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
    sub.add_argument("cluster_ids", nargs="+", type=_cluster_id, metavar="CLUSTER_ID")
    sub.add_argument("--previous", type=_count, help="the DAGMans' current max_nodes, for steps")
    sub.add_argument("--apply", action="store_true", help="send the throttle (default: dry run)")
    _add_inputs(sub)


def _add_inputs(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--source-site", required=True, type=_site, help="site the data comes from")
    sub.add_argument("--dest-site", type=_site, help="site the jobs run at (default: any)")
    demand = sub.add_mutually_exclusive_group(required=True)
    demand.add_argument("--bytes-per-job", type=size_arg, help="data each job moves, e.g. 2GB")
    demand.add_argument("--per-job-rate", type=rate_arg, help="rate each job needs, e.g. 100Mbit")
    sub.add_argument("--transfer-time", type=duration_arg, help="with --bytes-per-job (10m)")
    sub.add_argument("--bandwidth", type=rate_arg, help="use this bandwidth, not a measurement")
    sub.add_argument("--consumers", type=_count, help="users sharing the bottleneck (1)")
    sub.add_argument("--family", choices=[f.value for f in Family], help="address family")
    sub.add_argument("--config", type=Path, help="TOML configuration (policy, archives)")
    sub.add_argument("--window", type=duration_arg, help="statistics window, e.g. 24h")


def _category(text: str) -> str:
    try:
        return check_category(text)
    except DagError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--category: ")) from None


def _site(text: str) -> str:
    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"expected a site name of letters, digits, '.', '_' or '-', got {text!r}"
        )
    return text


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _cluster_id(text: str) -> int:
    return _count(text.removesuffix(".0"))


def cmd_dag(args: argparse.Namespace) -> int:
    dag = _read_dag(args.file)
    _check_dag_category(dag, args.category)
    previous = dag.maxjobs().get(args.category)
    decision = compute_decision(args, previous, consumers=args.consumers or 1)
    _require_jobs(decision, f"MAXJOBS {args.category} 0")
    text = set_maxjobs(dag, args.category, decision.jobs)
    was = "unset" if previous is None else previous
    change = f"MAXJOBS {args.category} {decision.jobs} (was {was})"
    if not args.in_place:
        sys.stdout.write(text)
        print(f"larkps: {change}; {decision.rationale}", file=sys.stderr)
        return 0
    if text == dag.text:
        print(f"{args.file}: {change}; unchanged")
    else:
        backup = args.file.with_name(args.file.name + ".bak")
        write_atomically(backup, dag.text)
        write_atomically(args.file, text)
        print(f"{args.file}: {change}; backup in {backup}")
    print(decision.rationale)
    return 0


def _read_dag(path: Path) -> DagFile:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_dag(text, str(path))


def _check_dag_category(dag: DagFile, category: str) -> None:
    """A local category must be used in the file; a +global one may live in splices."""
    known = set(dag.categories()) | set(dag.maxjobs())
    if not category.startswith("+") and category not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise DagError(
            f"--category: {dag.source} assigns no node to {category!r} (categories: {listed})"
        )
    if dag.splices() and not category.startswith("+"):
        names = ", ".join(name for name, _ in dag.splices())
        print(
            f"larkps: note: {dag.source} splices {names}; their own categories are"
            f" scoped to the splice, use +{category} for one limit across splices",
            file=sys.stderr,
        )


def _require_jobs(decision: ThrottleDecision, what: str) -> None:
    if decision.jobs < 1:
        raise LarkpsError(f"no room for a single job, not writing {what}: {decision.rationale}")


def cmd_running(args: argparse.Namespace) -> int:
    from larkps.dagman import set_node_throttle

    dags = len(args.cluster_ids)
    if args.consumers is not None and args.consumers < dags:
        raise UsageError(f"--consumers: at least the number of DAGs ({dags}), got {args.consumers}")
    decision = compute_decision(args, args.previous, consumers=args.consumers or dags)
    _require_jobs(decision, "max_nodes 0 (which DAGMan reads as unlimited)")
    print(decision.rationale)
    failed = 0
    for cluster_id in args.cluster_ids:
        if not args.apply:
            print(f"DAGMan {cluster_id}: would set max_nodes = {decision.jobs} (dry run)")
            continue
        answer = set_node_throttle(cluster_id, decision.jobs)
        status = "set" if answer.ok else "FAILED"
        print(f"DAGMan {cluster_id}: max_nodes = {decision.jobs} {status}: {answer.text}")
        failed += not answer.ok
    return 1 if failed else 0


def compute_decision(
    args: argparse.Namespace, previous: int | None, consumers: int
) -> ThrottleDecision:
    """Policy from --config (or defaults), demand from the options, capacities measured or given."""
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
    return decide(_capacities(args, settings, throttle, policy), demand, policy, previous)


def _capacities(
    args: argparse.Namespace,
    settings: Settings | None,
    throttle: ThrottleSettings,
    policy: ThrottlePolicy,
) -> list[Capacity]:
    configured = {}
    for entry in throttle.site_capacity:
        if entry.ingress is not None:
            configured[(entry.site, INGRESS)] = entry.ingress
        if entry.egress is not None:
            configured[(entry.site, EGRESS)] = entry.egress
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
    estimates = measured(settings, args.window, args.family)
    _check_sites(estimates, args.source_site, args.dest_site)
    return candidates(estimates, policy, args.source_site, args.dest_site, configured)


def measured(settings: Settings, window: int | None, family: str | None) -> list[BandwidthEstimate]:
    """One cycle (nothing published) turned into per-path bandwidth estimates."""
    from larkps.estimates import measured_estimate
    from larkps.pipeline import run_cycle

    result = run_cycle(settings, int(time.time()), window, publish=False)
    estimates = [measured_estimate(s, settings.windows.stale_after) for s in result.stats]
    return [e for e in estimates if family is None or e.path.family.value == family]


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
