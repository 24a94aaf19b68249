"""Raw data sources. Each maps its own files onto the lake's contract columns."""
