"""Pure domain services.  No chalice, no boto3: stores and clocks are injected."""
