"""The site-name -> attribute-name scheme is valid, reversible and collision-free."""

from __future__ import annotations

import re

import classad2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from larkps.errors import PublishError
from larkps.publish.identifiers import fragment_site, identifier_map, site_fragment

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@pytest.mark.parametrize(
    ("site", "fragment"),
    [
        ("BNL-ATLAS", "BNL_2d_ATLAS"),
        ("a_b", "A_5f_B"),
        ("UNL", "UNL"),
        ("é", "_e9_"),
        ('x"; Requirements = true', "X_22__3b__20_REQUIREMENTS_20__3d__20_TRUE"),
    ],
)
def test_examples(site: str, fragment: str):
    assert site_fragment(site) == fragment


@given(st.text(min_size=1, max_size=40))
def test_fragments_are_attribute_names_and_reversible(name: str):
    fragment = site_fragment(name)
    assert NAME.match("LarkPS_To_" + fragment)
    assert fragment_site(fragment) == "".join(c.upper() if c.isascii() else c for c in name)


@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_different_names_never_share_a_fragment_unless_only_case_differs(a: str, b: str):
    if a.upper() != b.upper() and site_fragment(a).upper() == site_fragment(b).upper():
        pytest.fail(f"{a!r} and {b!r} collide")


def test_case_only_differences_are_refused():
    with pytest.raises(PublishError, match="differ only in letter case"):
        identifier_map(["CERN", "cern"])
    assert identifier_map(["CERN-PROD", "BNL"]) == {"BNL": "BNL", "CERN-PROD": "CERN_2d_PROD"}


def test_fragment_survives_a_classad_round_trip():
    attr = "LarkPS_From_" + site_fragment("T2_US-Nebraska")
    ad = classad2.ClassAd({attr: 1})
    (back,) = classad2.parseAds(ad.printOld(), classad2.ParserType.Old)
    assert list(back.keys()) == [attr]
