"""Renderers: results in, text out. They never compute a number."""
