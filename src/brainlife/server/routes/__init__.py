"""Thin routes: parse the request, call a service, serialize the result."""
