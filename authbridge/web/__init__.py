"""HTTP surface: Flask app factory and blueprints (the only package importing Flask)."""
