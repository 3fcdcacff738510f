"""Child process that talks to a collector through htcondor2.

Run as ``python -m larkps.publish.collector_worker --pool HOST[:PORT] --command CMD``
with old-syntax ads on stdin. It lives in its own process so that the parent can
enforce a hard deadline (a hung collector costs 20 s per call inside the
bindings) and so that a crash in the bindings cannot take the daemon down.
Exit status 0 and ``sent N`` on stdout on success; 1 and one line on stderr
otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMANDS = ("UPDATE_AD_GENERIC", "INVALIDATE_ADS_GENERIC", "QUERY")
MY_TYPES = ("LarkPSPath", "LarkPSSite")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="larkps.publish.collector_worker")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--command", choices=COMMANDS, required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--my-type", choices=MY_TYPES, default="LarkPSPath")
    return parser.parse_args(argv)


def _collector(args: argparse.Namespace) -> object:
    import htcondor2

    security = None
    if args.token_file is not None:
        # The token alone: with the pool's own method list (FS first) the collector
        # would authenticate this process's Unix user and never look at the token.
        htcondor2.param["SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS"
        security = htcondor2.SecurityContext(token=args.token_file.read_text().strip())
    return htcondor2.Collector(args.pool, security)


def _query(args: argparse.Namespace) -> str:
    """Old-syntax text of every generic ad of one larkps type in the collector."""
    import htcondor2

    collector = _collector(args)
    constraint = f'MyType == "{args.my_type}"'  # a fixed choice, never user text
    ads = collector.query(htcondor2.AdType.Any, constraint=constraint)  # type: ignore[attr-defined]
    return "\n".join(ad.printOld() for ad in ads)


def _advertise(args: argparse.Namespace, text: str) -> int:
    import classad2

    collector = _collector(args)
    ads = list(classad2.parseAds(text, classad2.ParserType.Old)) if text.strip() else []
    for first in range(0, len(ads), args.batch):
        batch = list(ads[first : first + args.batch])  # always a list: anything else segfaults
        collector.advertise(batch, args.command, True)  # type: ignore[attr-defined]
    return len(ads)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "QUERY":
            sys.stdout.write(_query(args))
            return 0
        sent = _advertise(args, sys.stdin.read())
    except Exception as exc:  # noqa: BLE001 - any failure of the bindings is reported
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(f"sent {sent}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
