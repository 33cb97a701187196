"""Browse the dataset by class, status and batch; change one image (relabel, reject, restore); the history of every
change with undo.

service: queries and one-image changes. views: /, /gallery/<class>, /image/<id>, /decisions.
"""
