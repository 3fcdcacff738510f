"""Statistics: points (or rollups) -> per-path and per-site figures, forecasts, estimates, alarms.

:mod:`~larkps.stats.analysis` wires the rest for one cycle. Pure (no I/O, no clock; ``now`` is
an argument): ``aggregate``, the rollup arithmetic, ``forecast``, ``estimates``, ``expected``
(the one expected-bandwidth figure), ``alarms``, ``hourly``. ``rollups.store``,
``rollups.views`` and ``alarm_state`` keep their state in the store.

Public (what other stages may import):

- ``analysis``: Analysis, Policies, RawWindow, analyse
- ``estimates``: model_bps, window_estimates
- ``expected``: conservative, rationale
- ``hourly``: PathHistory, path_history
- ``aggregate.series_summaries``: summary_stats
- ``aggregate.sites``: ALARM_FACTORS, data_term
- ``rollups.views``: SiteOf, sites_of
- ``achieved``: ATTRIBUTES, AchievedTransfer, Skipped, parse_history_ad
- ``achieved_state``: StoredTransfer, latest_completion, record_transfers, stored_transfers
"""
