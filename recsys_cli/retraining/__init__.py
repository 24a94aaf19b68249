"""`recsys retrain`: move the training window forward, warm start or refit, and
promote the candidate only when it is not worse than production on the newest
window (tasks/retrain.py runs the steps; each module here is one of them)."""
