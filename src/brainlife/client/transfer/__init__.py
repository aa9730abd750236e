"""Downloads: everything that moves bytes from the server to disk, below `Client`.

Read it in this order:

- ``names``: the temporary names of unfinished downloads, and ``atomic_write``;
- ``writes``: bytes per write(2), a full disk as ``DiskFullError``, sizes for people;
- ``files``: one file (``fetch_file``): resumed with Range/If-Range, sha256 while writing;
- ``tarstream`` and ``tars``: a tar extracted safely as it streams, and resumed (``fetch_tar``);
- ``workers``: the one worker pool (``run_parallel``);
- ``units``: what every download is planned in (``FileUnit``, ``TarUnit``), their one runner and
  the one progress meter (``Meter``);
- ``single``: one data object into a folder, one task path into a file or folder
  (``Downloader``: the files of our manifest as units on the pool, else a tar unit);
- ``layout``, ``plan``, ``planning``: where each object goes, what is there, what to fetch
  (plans from queries, ids, lockfiles and task paths);
- ``engine``: the bulk engine (``Engine``) that runs a plan on the pool;
- ``lockfile``: ``bl-lock.json`` and offline verification;
- ``tasks``, ``taskarchives``: the same path of many tasks; task archives saved as is.

Uploads (the other direction) use the same meter, retry policy and give-up clock:

- ``upload``: one data object's files matched to its datatype, hashed, sent to the server's
  resumable upload API and finalized (``run_upload``);
- ``bulkupload``: a tree of objects by layout template, planned, idempotent, parallel;
- ``bids``: a BIDS tree read into objects as brainlife's bids-walker maps them.

Every retry follows the client's ``RetryPolicy`` (``brainlife.client._http``), every URL comes
from ``brainlife.client._urls``. Nothing here is public: ``brainlife.client`` re-exports what is.
"""
