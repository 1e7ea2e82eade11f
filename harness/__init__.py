"""The Label Studio harness the demo, the benchmarks and the end-to-end tests share.

A real Label Studio from PyPI (``label_studio``), the backend and its worker as
processes (``stack``), its UI in a real browser (``ui``) and captured payloads
(``payloads``). Development tooling: the backend never imports it.
"""
