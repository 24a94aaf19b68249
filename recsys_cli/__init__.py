"""recsys: from a shop's raw logs to a served, versioned recommender."""

__version__ = "0.2.0"
