"""Sealbox backend: what ships to AWS Lambda.

Layers, outermost first (DESIGN §5):

* ``routes``   -- Chalice blueprints: parse, call one service, return.
* ``services`` -- pure domain logic; imports neither chalice nor boto3.
* ``storage``  -- adapters over injected boto3 clients; botocore errors
  become :mod:`chalicelib.errors` domain errors here.
* ``wire``     -- formats both the backend and the devices need; pure.

``wiring`` is the only place that builds boto3 clients, lazily, once per
warm container.  Nothing here talks to AWS at import time, and nothing here
imports ``client_sim``.
"""
