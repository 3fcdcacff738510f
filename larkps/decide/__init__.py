"""Decisions: expected bandwidth in, throttles (N jobs at rate R) and site advice out.

Pure: no I/O and no clock. ``views`` reads one path's figures back from a path ad, as a
scheduler sees them.

Public (what other stages may import):

- ``throttle``: Capacity, Demand, ThrottlePolicy, candidates, decide, given_capacity,
  path_capacity, site_capacity
- ``advise``: Advice, advise
- ``plan``: Plan, Request, plan_all, plan_path
- ``views``: PathView, best_family, views_from_ads
"""
