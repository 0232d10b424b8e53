"""Layer 6, evaluation: metrics and their protocols, result files, significance, baselines, simulated clients, human evaluation."""
