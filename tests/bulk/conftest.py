from tests.fake_server import fake  # noqa: F401
