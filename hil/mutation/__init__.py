"""Mutation testing of the firmware: small bugs spliced into a module one at
a time, and the module's tests run against each on the simulator; a mutant
no test notices is a gap in the tests (docs/qa.md#mutation-testing).

`make mutation` runs it (python -m hil.mutation).
"""
