"""Snapshots: a frozen, named selection of the dataset plus its preprocessing, written once as the manifest training
reads.

Pure: manifest (format, settings, differences). service: choosing images and freezing them. views: /train/snapshots.
cli: `snapshot`.
"""
