"""Load tests: Locust users for the three endpoints, a one-command runner and its report.

    make loadtest USERS=32 DURATION=60s SCENARIO=mixed

Results of each run go to runs/loadtest/<timestamp>/ (see loadtest/run.py).
"""
