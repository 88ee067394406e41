"""Pure domain services: no chalice, no boto3 (DESIGN §5)."""
