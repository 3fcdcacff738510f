"""Submit-file lines from advice: Requirements and Rank over the STARTD_CRON attributes.

Expressions come from fixed templates; the data site enters only as an attribute
fragment (:mod:`larkps.publish.identifiers`) and as a string literal quoted by classad2.
Both expressions are safe when the machine lacks the attributes (undefined) and
when they are stale (``time() - TARGET.LarkPS_UpdateTime``): such machines are
neither preferred nor, unless ``strict``, excluded.
"""

from __future__ import annotations

import classad2

from larkps.decide.advise import Advice
from larkps.publish.ads import clean_text
from larkps.publish.identifiers import site_fragment

LOCAL_RANK = 1_000_000  # the data site's own machines come first


def _known(advice: Advice) -> tuple[str, str]:
    fragment = site_fragment(advice.data_site)
    low = f"TARGET.LarkPS_From_{fragment}_BandwidthLowMbps"
    known = (
        f"(!isUndefined({low}) && TARGET.LarkPS_From_{fragment}_Trusted =?= true"
        f" && (time() - TARGET.LarkPS_UpdateTime) < {advice.stale_after})"
    )
    return low, known


def rank_expression(advice: Advice) -> str:
    low, known = _known(advice)
    local = f"TARGET.LarkPS_Site =?= {classad2.quote(clean_text(advice.data_site))}"
    return f"ifThenElse({local}, {LOCAL_RANK}, ifThenElse({known}, {low}, 0))"


def requirements_expression(advice: Advice, strict: bool = False) -> str:
    low, known = _known(advice)
    local = f"TARGET.LarkPS_Site =?= {classad2.quote(clean_text(advice.data_site))}"
    need = 0.0
    if advice.deadline_s:
        need = advice.size_bytes * 8 / advice.deadline_s / 1e6
    fast_enough = f"{low} >= {need:.3f}" if need else f"{low} > 0"
    if strict:
        return f"({local}) || ({known} && {fast_enough})"
    return f"({local}) || !{known} || ({fast_enough})"


def site_lines(advice: Advice, site: str) -> list[str]:
    """Submit lines that run only at ``site`` and, there, only where the path is fast enough."""
    lines = submit_lines(advice)
    only = f"TARGET.LarkPS_Site =?= {classad2.quote(clean_text(site))}"
    expression = lines[1].removeprefix("requirements = ")
    lines[1] = f"requirements = ({only}) && ({expression})"
    return lines


def submit_lines(advice: Advice, strict: bool = False) -> list[str]:
    """Ready to paste into a submit file (combine with your own requirements by &&)."""
    return [
        f"# larkps advice: input at {clean_text(advice.data_site)}, {advice.size_bytes} bytes",
        f"requirements = {requirements_expression(advice, strict)}",
        f"rank = {rank_expression(advice)}",
    ]
