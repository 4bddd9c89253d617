"""Model bundles, the Predictor and DataFrame input: what a trained model needs outside its run dir."""
