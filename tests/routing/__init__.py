"""Routing tests (a package: tests/automation has a test_policy.py too)."""
