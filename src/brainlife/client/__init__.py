"""The brainlife client library: everything public is importable from here.

```python
from brainlife.client import Client

with Client() as bl:   # BLHOST, and the token of `bl login`
    page = bl.query_datasets(project="5a022fc99c0d250055709e9c", limit=10)
    for ds in page.datasets:
        print(ds["_id"], ds["meta"].get("subject"))
```
"""

from brainlife.client._client import Client, DatasetPage, LoginResult
from brainlife.client._config import DEFAULT_HOST, Config, resolve_config
from brainlife.client._download import PARTIAL_SUFFIX, DownloadResult, Progress
from brainlife.client._exceptions import (
    ApiError,
    AuthError,
    BrainlifeError,
    ChecksumMismatch,
    ConfigError,
    DiskFullError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
)

__all__ = [
    "DEFAULT_HOST",
    "PARTIAL_SUFFIX",
    "ApiError",
    "AuthError",
    "BrainlifeError",
    "ChecksumMismatch",
    "Client",
    "Config",
    "ConfigError",
    "DatasetPage",
    "DiskFullError",
    "DownloadResult",
    "LoginResult",
    "NotFound",
    "PermissionDenied",
    "Progress",
    "ProtocolError",
    "ServerUnavailable",
    "resolve_config",
]
