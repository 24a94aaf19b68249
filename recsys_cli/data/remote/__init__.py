"""Lakes, splits and feature sets on an object store (`paths.data_dir=s3://bucket/prefix`).

`mirror.py`: what a command sees, local mirrors of the folders it reads and
writes (`mirrored`, `on_mirrors`); `folder.py`: how a folder is published on the
store (manifest last, a lock object per writer, only our own folders replaced),
the part a Spark engine writing `s3a://` directly shares.
"""

from recsys_cli.data.remote.folder import RemoteFolder, RemoteStoreError
from recsys_cli.data.remote.mirror import is_remote, mirrored, on_mirrors, recorded

__all__ = ["RemoteFolder", "RemoteStoreError", "is_remote", "mirrored", "on_mirrors", "recorded"]
