"""Ray Serve deployments: thin adapters over ``samo_serve`` (the only package that imports Ray)."""
