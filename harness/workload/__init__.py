"""Workload images the harness builds itself (no registry is needed)."""
