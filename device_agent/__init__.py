"""UDP responder on the GPU host: chip discovery and signing."""
