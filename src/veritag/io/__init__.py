"""Importers and exporters: streamed, with errors that name file, line and field."""

from .exporter import EXPORT_FORMATS, ExportResult, export_project
from .importer import ColumnMap, ImportResult, import_file
from .readers import FORMATS, open_rows

__all__ = ["EXPORT_FORMATS", "FORMATS", "ColumnMap", "ExportResult", "ImportResult", "export_project", "import_file", "open_rows"]
