"""Importers and exporters: streamed, with errors that name file, line and field."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .formats import EXPORT_FORMATS, FOLDER_FORMATS, FORMATS

if TYPE_CHECKING:
    from .exporter import ExportResult, export_project
    from .importer import ColumnMap, ImportResult, import_file
    from .labels import read_label_files, write_labels, write_sources
    from .readers import open_rows

#: Where each public name lives, imported on first use: the exporter pulls in the store and
#: the resolver, which reading a file (``veritag resolve labels.csv``) does not need.
_HOMES = {
    "ExportResult": ".exporter",
    "export_project": ".exporter",
    "ColumnMap": ".importer",
    "ImportResult": ".importer",
    "import_file": ".importer",
    **dict.fromkeys(("read_label_files", "write_labels", "write_sources"), ".labels"),
    "open_rows": ".readers",
}

__all__ = [
    "EXPORT_FORMATS",
    "FOLDER_FORMATS",
    "FORMATS",
    "ColumnMap",
    "ExportResult",
    "ImportResult",
    "export_project",
    "import_file",
    "open_rows",
    "read_label_files",
    "write_labels",
    "write_sources",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
