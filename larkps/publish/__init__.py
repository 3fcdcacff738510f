"""Publishing: figures as ClassAds (classad2): files, the collector, STARTD_CRON, submit lines.

The collector is reached through a child process per ``htcondor2`` call
(``python -m larkps.publish.collector_worker``) under a deadline; what it refuses waits in a spool.

Public (what other stages may import):

- ``ads``: AD_FORMATS, AdContext, clean_text, FilePublisher, PathExtras, parse_old, path_ads,
  render, render_old, site_ads, write_atomically
- ``collector``: CollectorPublisher, Spool, query_ads
- ``startd``: startd_cron_ad, startd_cron_text
- ``submit``: site_lines, submit_lines
- ``identifiers``: site_fragment
- ``schedd_history``: HistoryRead, read_into_store
"""
