"""Probes of the residual stream: targets, probe families, and the probe app."""
