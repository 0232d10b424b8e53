"""Layer 3, describing the corpus: section 4 statistics, their inference, and the reproduction ledger."""
