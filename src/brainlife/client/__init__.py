"""The brainlife client library: everything public is importable from here.

```python
from brainlife.client import Client

with Client() as bl:   # BLHOST, and the token of `bl login`
    page = bl.query_datasets(project="5a022fc99c0d250055709e9c", limit=10)
    for ds in page.datasets:
        print(ds["_id"], ds["meta"].get("subject"))
```
"""

from brainlife.client._client import Client, DatasetPage, LoginResult, verify_download
from brainlife.client._config import DEFAULT_HOST, Config, resolve_config
from brainlife.client._exceptions import (
    ApiError,
    AuthError,
    BrainlifeError,
    ChecksumMismatch,
    ConfigError,
    Conflict,
    DiskFullError,
    GaveUp,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerUnavailable,
    SourceChanged,
    UploadRefused,
)
from brainlife.client._http import RetryPolicy, Transport
from brainlife.client._queries import AppFilter, DatasetFilter, ReleaseFilter
from brainlife.client.transfer.engine import BulkResult, Event, EventHandler
from brainlife.client.transfer.layout import FIELDS as LAYOUT_FIELDS
from brainlife.client.transfer.layout import LAYOUT_ALIASES, Layout, LayoutProblem, resolve_layout
from brainlife.client.transfer.layout import PRESETS as LAYOUT_PRESETS
from brainlife.client.transfer.lockfile import LOCK_NAME, Lockfile, VerifyProblem, VerifyReport
from brainlife.client.transfer.names import FOLDER_PART_SUFFIX as PARTIAL_SUFFIX
from brainlife.client.transfer.plan import EXISTING, Plan, PlanFile, PlanObject, describe_plan
from brainlife.client.transfer.single import DownloadResult, Progress
from brainlife.client.transfer.tasks import TaskRun, name_tasks, task_subject
from brainlife.client.transfer.upload import UploadPlan, UploadResult, UploadSource
from brainlife.client.transfer.writes import human_size

__all__ = [
    "DEFAULT_HOST",
    "EXISTING",
    "LAYOUT_ALIASES",
    "LAYOUT_FIELDS",
    "LAYOUT_PRESETS",
    "LOCK_NAME",
    "PARTIAL_SUFFIX",
    "ApiError",
    "AppFilter",
    "AuthError",
    "BrainlifeError",
    "BulkResult",
    "ChecksumMismatch",
    "Client",
    "Config",
    "ConfigError",
    "Conflict",
    "DatasetFilter",
    "DatasetPage",
    "DiskFullError",
    "DownloadResult",
    "Event",
    "EventHandler",
    "GaveUp",
    "Layout",
    "LayoutProblem",
    "Lockfile",
    "LoginResult",
    "NotFound",
    "PermissionDenied",
    "Plan",
    "PlanFile",
    "PlanObject",
    "Progress",
    "ProtocolError",
    "ReleaseFilter",
    "RetryPolicy",
    "ServerUnavailable",
    "SourceChanged",
    "TaskRun",
    "Transport",
    "UploadPlan",
    "UploadRefused",
    "UploadResult",
    "UploadSource",
    "VerifyProblem",
    "VerifyReport",
    "describe_plan",
    "human_size",
    "name_tasks",
    "resolve_config",
    "resolve_layout",
    "task_subject",
    "verify_download",
]
