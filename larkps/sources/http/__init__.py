"""HTTP for every source: the JSON client, its lean HTTP/1.1 reader and the parse gate.

Public (what other stages may import):

- ``client``: ClientStats, HttpOptions, JsonClient, ResponseTooLarge, cycle_deadline
"""
