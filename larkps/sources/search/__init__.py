"""Search-engine sources: perfSONAR 5 OpenSearch and the WLCG ``ps_*`` datastore.

Pure query builders and document parsers; per-pair summaries computed by the cluster.

Public (what other stages may import):

- ``opensearch``: OpenSearchSource
- ``pses``: PsEsSource
- ``source``: SearchSource
"""
