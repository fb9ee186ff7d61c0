"""The file formats veritag reads and writes, in a module that imports nothing.

The command line lists them in its option help, and must not import the readers and exporters
(pyarrow, SQLAlchemy, the store) just to print that help.
"""

from __future__ import annotations

FORMATS = ("csv", "tsv", "jsonl", "parquet")
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hf", "long", "dpo")
