"""Small shared helpers: crash-safe writes, hub file resolution, logging."""
