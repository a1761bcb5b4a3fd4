"""Analyses that are neither evaluation nor probes: comparisons with gradient descent and the
linear-self-attention measurements. Each writes JSON that the figures package reads."""
