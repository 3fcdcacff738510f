"""Configuration: the TOML file -> frozen settings, with errors naming the key and the file.

The site map (``[sites]``: host -> site by exact name, domain or network) and the archive
query vocabulary live here too: every later stage reads them through the settings.

Public (what other stages may import):

- ``settings``: ArchiveSettings, CollectorTarget, FileTarget, NAME_PATTERN, Settings,
  ThrottleSettings, adhoc_settings, load_settings, resolved_config, settings_from_dict
- ``archives``: Writer
- ``report``: ReportSettings
- ``throttle``: ThrottlePolicy
- ``sites``: SiteMap, SiteRule
- ``queries``: ALL_EVENT_TYPES, ARCHIVE_PATH, DATA_PAGE, DEFAULT_EVENT_TYPES, DNS_MATCH_RULES,
  METADATA_PAGE, MetadataFilters, SearchMode, archive_url
- ``psconfig``: import_psconfig, render_toml
- ``calibration``: CalibrationPolicy, CalibrationSettings, calibration_settings
- ``jobnet``: CLASSES, ELSEWHERE, HELPER, LEDGER, Mode, Network, NodeJobNet, Policy,
  ROOTLESS_POLICIES, UserNet, jobnet_settings, load_jobnet
"""
