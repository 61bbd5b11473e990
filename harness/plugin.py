"""Tollgate's pytest plugin (entry point `pytest11`)."""
