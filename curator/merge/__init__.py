"""Merge another dataset in with a preview: its files are staged as one batch, sorted into new, exact and near
duplicates and invalid files, and committed (or discarded) as one undoable decision.

service: stage, preview, accept, map classes, commit, discard, dry run. views: /merge/... cli: `merge`.
"""
