"""The brainlife client library: everything public is importable from here.

```python
from brainlife.client import Client

with Client() as bl:   # BLHOST, and the token of `bl login`
    page = bl.query_datasets(project="5a022fc99c0d250055709e9c", limit=10)
    for ds in page.datasets:
        print(ds["_id"], ds["meta"].get("subject"))
```
"""

from typing import TYPE_CHECKING, Any

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

# The public names of the transfer modules: imported here for type checkers only, and at run time
# by ``__getattr__`` on first use, so that commands that only query (``bl data query``, ``bl
# project query``) start without the download and upload machinery.
if TYPE_CHECKING:
    from brainlife.client.transfer.engine import BulkResult, Event, EventHandler
    from brainlife.client.transfer.layout import FIELDS as LAYOUT_FIELDS
    from brainlife.client.transfer.layout import (
        LAYOUT_ALIASES,
        Layout,
        LayoutProblem,
        resolve_layout,
    )
    from brainlife.client.transfer.layout import PRESETS as LAYOUT_PRESETS
    from brainlife.client.transfer.lockfile import LOCK_NAME, Lockfile, VerifyProblem, VerifyReport
    from brainlife.client.transfer.names import FOLDER_PART_SUFFIX as PARTIAL_SUFFIX
    from brainlife.client.transfer.plan import EXISTING, Plan, PlanFile, PlanObject, describe_plan
    from brainlife.client.transfer.single import DownloadResult, Progress
    from brainlife.client.transfer.tasks import TaskRun, name_tasks, task_subject
    from brainlife.client.transfer.upload import UploadPlan, UploadResult, UploadSource
    from brainlife.client.transfer.writes import human_size

#: the names imported above for type checkers: public name -> (module of ``transfer``, its name)
_LAZY: dict[str, tuple[str, str]] = {
    **{n: ("engine", n) for n in ("BulkResult", "Event", "EventHandler")},
    **{n: ("layout", n) for n in ("LAYOUT_ALIASES", "Layout", "LayoutProblem", "resolve_layout")},
    "LAYOUT_FIELDS": ("layout", "FIELDS"),
    "LAYOUT_PRESETS": ("layout", "PRESETS"),
    **{n: ("lockfile", n) for n in ("LOCK_NAME", "Lockfile", "VerifyProblem", "VerifyReport")},
    "PARTIAL_SUFFIX": ("names", "FOLDER_PART_SUFFIX"),
    **{n: ("plan", n) for n in ("EXISTING", "Plan", "PlanFile", "PlanObject", "describe_plan")},
    **{n: ("single", n) for n in ("DownloadResult", "Progress")},
    **{n: ("tasks", n) for n in ("TaskRun", "name_tasks", "task_subject")},
    **{n: ("upload", n) for n in ("UploadPlan", "UploadResult", "UploadSource")},
    "human_size": ("writes", "human_size"),
}


# hidden from type checkers, which read the imports above: a misspelt name stays an error there
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"brainlife.client.transfer.{module}"), attr)
        globals()[name] = value  # the next lookup finds it without this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
