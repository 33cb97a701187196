"""Exact and near duplicates: hashes propose pairs (a banded Hamming index), an aligned thumbnail comparison confirms
them, groups get a suggested keeper, and resolving is undoable.

Pure: nearsearch (the index), matching (confirm, group, keeper), calibration (precision and recall per distance),
variants (the edits that leave 'the same picture'). service: searches and resolutions in the index, same pixels in
another encoding. views: /duplicates/... cli: `dedup`.
"""
