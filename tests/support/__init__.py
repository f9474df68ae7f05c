"""Helpers of the test suite that are not tests: the test endpoint, scripted worlds, crash and rule helpers.

`tests/` is on `sys.path` (pytest's `pythonpath` setting), so tests import them as
`from support.endpoint import Endpoint`.
"""
