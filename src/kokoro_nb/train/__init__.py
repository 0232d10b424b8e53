"""Layer 4, training: SFT data (section 5.1), configuration and profiles, models, the run plan, the loop, checkpoints."""
