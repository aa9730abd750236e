"""The `bl` command line: thin commands over `brainlife.client`."""
