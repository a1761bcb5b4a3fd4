"""Prompts: task families and their samplers, token encodings, context manipulations, and the
evaluation-time distribution shifts."""
