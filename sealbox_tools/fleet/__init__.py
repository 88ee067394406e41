"""The device fleet simulator: many simulated phones driving the real backend.

``metrics`` records what happened, ``transports`` wrap a device's transport to
time requests and inject network faults, ``cpu`` attributes client CPU time
to cryptography, key derivation and the rest, and ``report`` turns a run into
JSON, a human summary and a self-contained HTML chart.
"""
