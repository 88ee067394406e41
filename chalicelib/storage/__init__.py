"""Adapters over injected boto3 clients.

Each adapter implements a store Protocol declared by a service and turns
botocore errors into :mod:`chalicelib.errors` domain errors (``from exc``),
so nothing above this layer ever sees a ``ClientError``.
"""
