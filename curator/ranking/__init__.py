"""Pairwise ranking: raw answers are stored, Bradley–Terry ratings with uncertainty are derived from them, and the next
pair is chosen to settle each class's top-k.

Pure: rating (the maths), pairing (which pair next). service: answers, the ratings cache, standings, selection,
triage. views: /rank/... cli: `rank export`.
"""
