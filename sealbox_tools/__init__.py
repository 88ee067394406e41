"""Sealbox tooling: what drives or inspects a backend from outside.

Neither a device nor Lambda runs this package (DESIGN §5, STYLE 16): it holds
the ``sealbox`` command-line entry point (:mod:`sealbox_tools.cli`), the
local stack on moto, its provisioning from ``infra/`` and its blob-event
poller (``local_stack``, ``provisioning``, ``local_events``), the end-to-end
demo (``demo``), the privacy audit (``audit``) and the device fleet
simulator (``fleet``).

Tooling may import both sides: the device SDK (``client_sim``) and the
server (``app``, ``chalicelib``).  Neither side imports this package; the
rule is checked by ``tests/unit/test_import_rules.py``.
"""
