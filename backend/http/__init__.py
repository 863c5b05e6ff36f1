"""The local HTTP server the Blender add-on talks to (``posediff serve``).

* :mod:`.schemas` -- request and response bodies (pydantic), shared with the CLI.
* :mod:`.responses` -- the server's own response and error bodies.
* :mod:`.auth` -- bearer token and ``Host`` policy.
* :mod:`.guard` -- the ASGI middleware that enforces them and bounds request bodies.
* :mod:`.jobs` -- the single-worker job queue.
* :mod:`.app` -- the FastAPI routes.
* :mod:`.serve` -- socket binding, the uvicorn server and the ``serve`` command line.
"""
