"""Chronological, leakage-safe splits: every part is defined by time cutoffs
(global or per user), recorded in the split manifest."""
