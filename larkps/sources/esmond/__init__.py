"""The esmond/elmond REST source and its pure page parsers.

Public (what other stages may import):

- ``source``: EsmondSource, series_label
- ``parse``: ParsedPage, address_family, parse_histogram, parse_metadata, parse_page,
  parse_points
"""
