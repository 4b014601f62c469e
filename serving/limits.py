"""Bounds on one request, shared by the HTTP API and the CLI: what a client may ask the reader for."""

MAX_K = 100  # results per request
MAX_TEXT_CHARS = 2000  # query or conversational request text
