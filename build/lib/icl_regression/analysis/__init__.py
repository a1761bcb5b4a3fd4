"""Analyses that are neither evaluation nor probes: attention maps, comparisons with gradient
descent and the linear-self-attention measurements. Each writes files the figures read."""
