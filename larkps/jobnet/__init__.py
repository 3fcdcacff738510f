"""Per-job network namespaces for HTCondor jobs: policy, rate limit, accounting.

An execute node's ``USER_JOB_WRAPPER`` puts each job into its own network
namespace, with the policy its job ad asks for within what the node's ``[jobnet]``
allows, and the rate larkps decided for its path; it counts the job's bytes into a
local ledger and the job's ad (docs/jobnet.md).

Public (what other stages may import):

- ``request``: JobNetRefused, JobPlan, plan_job
- ``jobad``: AdUnreadable, AdText, ad_texts_from_environment, ads_from_environment,
  job_id_from_environment, parse_ad_texts, read_ad, read_ad_text
- ``ledger``: Ledger, LedgerFile, LedgerRecorder, JobObject, ProcessId,
  ledger_files, read_runs, writer_path
- ``schema``: LEDGER_STEPS, LEDGER_TABLES, LEDGER_VERSION, LedgerError
- ``accounting``: Counter, RunRecord, Accounting, Totals, counters_from, summarize, totals
- ``gc``: Prefixes, Report, collect
- ``chirp``: JobUser, attributes, chirp, report_to_job_ad
- ``recorder``: NodeRecorder (ledger and job ad; what the wrapper and helper use)
- ``rules``: Count, Counters, counter_name, counters_from_json, ruleset
- ``rootless``: JobNetError, Launch, recipe, recorder_hooks, run_rootless
- ``runner``: Hooks, Recipe, recipe_from_doc, run_recipe (what a job's start loads)
- ``planner``: DEFAULT_SOCKET, PLANNER_VARIABLE, PlannerAnswer, PlannerUnavailable, ask,
  planner_socket (the wrapper's side of the planner)
- ``planner_service``: Planner, listen, run_planner (``larkps jobnet planner``)
- ``plandoc``: node_doc, node_from_doc, plan_doc, plan_from_doc
- ``supervise``: FORWARDED, Recorder, SummaryRecorder, exit_like, say
- ``kernel``: map_ids, set_subreaper, setns, unshare (libc calls Python 3.11 lacks)
- ``wrap``: main (``larkps-job-wrap``, HTCondor's USER_JOB_WRAPPER)
- ``helper``: BUILDER_SOCKET, BUILDER_VARIABLE, Caller, run_built (the privileged
  helper's lean side); ``helper_main``: main (``larkps-jobnet-helper``);
  ``helper_local``: run_alone (the helper building in-process)
- ``helperconf``: CONFIG, PATH, HelperRefused, config_path, load_node, root_only
- ``builder``: Builder, bind_socket, run_builder, serve_forever (``larkps jobnet builder``)
- ``wire``: Channel, WireError, peer_credentials
"""
