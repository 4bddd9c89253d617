"""Composition: the train / eval / predict jobs, built from config groups; imported only by the entry points."""
