"""HTTP surface: Flask app factory and blueprints (the only package importing Flask)."""

from authbridge.web.app import create_app

__all__ = ["create_app"]
