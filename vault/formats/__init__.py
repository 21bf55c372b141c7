"""Formats: the importer/exporter contract, its hooks and registry, importing, exporting and restoring.

A format plugin needs only what this package's top level exports (also re-exported by `vault`).
"""

from vault.formats.contract import (
    Attachment, BadRecord, Exporter, ExportRecord, Importer, ImportOption, Input, Notice, SourceRecord,
)
from vault.formats.hookspecs import hookimpl

__all__ = [
    "Attachment", "BadRecord", "ExportRecord", "Exporter", "ImportOption", "Importer", "Input", "Notice", "SourceRecord",
    "hookimpl",
]
