"""The curator: the dataset, one sub-package per feature.

`imports` (files in: validate, fingerprint, store once; batches), `gallery` (browse, relabel, reject, history and
undo), `ranking` (pairwise answers, Bradley–Terry ratings, active pairing, triage), `dedup` (exact and near
duplicates, calibration), `merge` (stage another dataset, preview, commit) and `snapshots` (freeze a selection for
training). Each holds its pure logic, one `service` that owns its transactions, thin `views` (its blueprint) and
`cli` commands, and its templates beside it. Never imports torch or trainer: the web process stays light.
"""
