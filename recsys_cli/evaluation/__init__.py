"""Ranking metrics and evaluation."""
