"""Arena projects (a package: tests/io has a test_import.py too)."""
