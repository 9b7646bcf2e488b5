"""Files loaded into the Locust processes by path; the harness never imports them (see load.py)."""
