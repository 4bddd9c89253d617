"""The composition layer: config to objects, and the runs rebuilt from what they saved."""
