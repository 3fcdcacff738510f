"""Appliers: decisions put into HTCondor and the kernel.

DAG files (``dagfile``: byte-preserving MAXJOBS rewrites), a running DAGMan (``dagman``,
through ``htcondor2``) and tc rate limits on a job's veth pair (``tc``: commands run as
argument lists, every name checked first).

Public (what other stages may import):

- ``dagfile``: DagError, DagTree, check_category, load_dag, parse_dag, rewrite_maxjobs,
  set_maxjobs
- ``dagman``: current_node_throttle, set_node_throttle
- ``tc``: COMMAND_TIMEOUT, CommandFailed, Device, HOST_SIDE, JOB_SIDE, QDISCS, Shaping, apply,
  as_text, burst_bytes, check_interface, check_rate,
  check_netns, clear, render_show, run, tc_commands
"""
