"""The web layer: app factory, realm routing, middlewares, templates."""
