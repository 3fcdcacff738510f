"""The embedded perfSONAR archive: a deterministic synthetic mesh served over HTTP.

``Mesh`` generates measurements on demand and knows its ground truth (``Truth``);
``EmbeddedArchive`` serves it with the esmond/elmond REST API on loopback.
"""

from __future__ import annotations

from larkps.embedded.config import MeshConfig
from larkps.embedded.mesh import Mesh
from larkps.embedded.server import EmbeddedArchive
from larkps.embedded.truth import Truth

__all__ = ["EmbeddedArchive", "Mesh", "MeshConfig", "Truth"]
