"""Allow ``python -m larkps``."""

from __future__ import annotations

import sys

from larkps.cli.app import main

sys.exit(main())
