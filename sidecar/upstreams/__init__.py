"""Clients for the places models are served from, and the choice between them."""
