"""The checks of tests/check_lake.py, by concern (the script's docstring
says what each numbered check does; the script runs them in order):

- common: the lake's contract, the constants the checks share, fail().
- files: 1. each file on its own, 7. the warehouse, 8. the Glue table.
- readers: 3. the readers, 4. ticker pruning, 5. date pruning, 6. projection.
"""
