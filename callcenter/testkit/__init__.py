"""Tools that drive the product from outside, shared by the tests and the benchmarks.

Plain Python on the standard library (no pytest, no pjsua2), so ``bench/`` imports them like
any package instead of reaching into ``tests/``. Product code never imports them
(``tests/foundation/test_import_cycles.py`` checks).
"""
