"""Point-in-time features: everything here is computed from events strictly
before a cutoff, as Polars expressions over lazy frames."""
