"""The trainer: training runs (launched as subprocesses, watched through their files), galleries, generation and
stickers. Never imports torch: the web process stays light and a crashed run cannot take it down.
"""
