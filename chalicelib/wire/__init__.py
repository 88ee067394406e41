"""Wire formats shared by the backend and the devices.

Pure code only: no chalice, no boto3, no I/O.  ``client_sim`` imports these
modules so that both sides agree on one definition of each format.
"""
