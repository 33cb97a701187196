"""The shared kernel every feature builds on, and nothing feature-specific: the database handle and every table
(`db`, `models`), schema migrations (`migrate`), the undoable change log (`history`), the one safe-write helper
(`files`), and the web and command-line glue every blueprint and command uses (`web`, `cli`).

Depends on nothing else of ours. Importing this package loads nothing: each module is imported where it is used.
"""
