"""Files in: validate, fingerprint and store each file once (content-addressed), index it as part of a batch, and
report what was added, skipped as an exact copy, or refused and why.

Pure: sources (where files come from), validation, decoding, hashing (fingerprints), forking (worker processes),
storage (the image store), storing (one file end to end). service: batches in the index. views: /import, /batches,
/batch/<id>. cli: `import`, `demo`.
"""
