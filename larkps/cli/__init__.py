"""The ``larkps`` command: argument parsing, exit codes and rendering around the pipeline.

One module per group of subcommands in ``commands``; ``render`` turns statistics and run
reports into tables. Building the parser imports no pandas, numpy or pipeline.

Public (what other stages may import):

- ``app``: main
"""

from larkps.cli.app import main

__all__ = ["main"]
