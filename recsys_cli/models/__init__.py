"""Recommenders behind one interface (fit, score, recommend, save/load)."""
