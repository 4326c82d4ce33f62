"""The HTTP edge: the FastAPI app, its routes and schemas, the guard (API keys, rate limits), error rendering."""
