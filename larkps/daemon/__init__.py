"""The daemon: ``larkps run`` cycles on a schedule, its logs and its Prometheus metrics.

``logs`` is also the logging set-up of every command.

Public (what other stages may import):

- ``service``: Daemon
- ``logs``: LOG_FORMATS, configure, one_line, problem_lines
"""
