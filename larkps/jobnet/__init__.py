"""Per-job network namespaces for HTCondor jobs: policy, rate limit, accounting.

An execute node's ``USER_JOB_WRAPPER`` puts each job into its own network
namespace, with the policy its job ad asks for within what the node's ``[jobnet]``
allows, and the rate larkps decided for its path; it counts the job's bytes into a
local ledger and the job's ad (docs/jobnet.md).

Public (what other stages may import):

- ``request``: JobNetRefused, JobPlan, plan_job
- ``jobad``: AdUnreadable, ads_from_environment, job_id_from_environment, read_ad
- ``ledger``: Ledger, LedgerFile, LedgerRecorder, JobObject, ProcessId,
  ledger_files, read_runs, writer_path
- ``schema``: LEDGER_STEPS, LEDGER_TABLES, LEDGER_VERSION, LedgerError
- ``accounting``: Counter, RunRecord, Accounting, Totals, counters_from, summarize, totals
- ``gc``: Prefixes, Report, collect
- ``chirp``: JobUser, attributes, chirp, report_to_job_ad
- ``recorder``: NodeRecorder (ledger and job ad; what the wrapper and helper use)
"""
