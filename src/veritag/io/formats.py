"""The file formats veritag reads and writes, in a module that imports nothing.

The command line lists them in its option help, and must not import the readers and exporters
(pyarrow, SQLAlchemy, the store) just to print that help.
"""

from __future__ import annotations

FORMATS = ("csv", "tsv", "jsonl", "parquet")
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "parquet-dataset", "hf", "long", "dpo")
#: Export formats that write a folder (the API sends it zipped).
FOLDER_FORMATS = ("parquet-dataset", "hf")
#: Rows per Parquet file of a folder export: a file a reader can take whole, few files at 10^8.
PARTITION_ROWS = 1_000_000
