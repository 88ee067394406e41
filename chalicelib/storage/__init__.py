"""Storage adapters over injected boto3 clients.

Each adapter takes its client as an argument (the wiring builds clients
lazily, once per warm container) and turns botocore errors into
:mod:`chalicelib.errors` domain errors with ``raise ... from exc``.
"""
