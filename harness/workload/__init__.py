"""Workload images the harness builds itself (no registry is needed)."""

DEMO = "demo"  # the bundled demo workload's image name in a scenario
# the demo's dynamic responses name the replica that served them (its hostname) in this header
DEMO_ATTRIBUTION_HEADER = "X-Served-By"
