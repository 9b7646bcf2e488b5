"""Outputs for CI and code review: JUnit XML (`junit`) and Markdown summaries (`markdown`)."""
