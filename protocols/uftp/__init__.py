"""UFTP (Shapeshifter): flexibility trading between DSOs and aggregators."""
