"""Chalice blueprints: the HTTP edge.  Parse, call one service, return."""
