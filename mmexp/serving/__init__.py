"""Models for serving: a trained checkpoint as one file with a plain-tensor signature, plus its preprocessing spec."""
