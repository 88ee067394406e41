"""The notes app's backend extension (installed with SEALBOX_EXTENSIONS=notes_server.routes)."""
