"""brainlife for Python: the `bl` CLI, a client library and a brainlife.io-compatible archive
server.

Importing this package is cheap on purpose: `bl --help` must start fast, so nothing heavy
(the server, HTTP, rich) is imported here.
"""

__version__ = "0.1.0"
