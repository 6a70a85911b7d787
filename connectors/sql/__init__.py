"""SQL sink and query-based SQL source for any SQLAlchemy database."""
