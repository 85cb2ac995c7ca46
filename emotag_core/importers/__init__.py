"""Importers of data users already have from peer projects, into this project's tables."""
