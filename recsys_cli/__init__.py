"""recsys: from a shop's raw logs to a served, versioned recommender."""

__version__ = "0.1.0"
