"""mmsb - read an MMSB store from Python, through libmmsb.so (ctypes).

No compiler is needed: the module loads libmmsb.so.0 (mmsb(3)) at import.
It opens a store read-only and reads any page at any retained epoch, the
history of a page, and the change feed (every change, epoch by epoch).

    import mmsb
    with mmsb.Store("/srv/store") as st:
        st.head                          # newest epoch
        st.read("hello.txt")             # bytes at head
        st.read("hello.txt", epoch=1)    # bytes at epoch 1 (or a tag name)
        st.history("hello.txt")          # [Change(epoch=1, kind='write', ...), ...]
        for ch in st.feed(since=1):      # every change after epoch 1, oldest first
            print(ch.epoch, ch.kind, ch.path)

Errors raise OSError with the errno the library returned (FileNotFoundError
for a page or epoch that does not exist).  A Store is not shared between
threads by this module; use one per thread.

The library is found through $MMSB_LIBRARY (a path), else the system's
libmmsb.so.0.  A read-only open takes no lock: it reads a store whether or
not a daemon serves it, and sees the epochs committed when it was opened
(see mmsb(3), "READ-ONLY OPENS").
"""

import ctypes
import ctypes.util
import errno as _errno
import os
from collections import namedtuple

__all__ = ["Store", "Stat", "Change", "EpochInfo", "Tag", "load_library"]

_OPTS_BYTES = 1024  # more than sizeof(struct mmsb_store_opts); tests check

# struct mmsb_store_opts begins with bool create, bool read_only (mmsb.h);
# the rest is filled by mmsb_store_opts_init and left alone.
_OPTS_CREATE = 0
_OPTS_READ_ONLY = 1

_TYPES = {1: "dir", 2: "page", 3: "symlink", 4: "fifo", 5: "socket", 6: "chardev", 7: "blockdev"}
_SOURCES = {0: "user", 1: "propagation", 2: "restore", 3: "system"}
_CHANGES = {1: "create", 2: "write", 3: "truncate", 4: "unlink", 5: "rmdir",
            6: "rename", 7: "setattr", 8: "setxattr", 9: "rmxattr", 10: "link", 11: "mknod"}


class _Attr(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("parent", ctypes.c_uint64),
                ("type", ctypes.c_int), ("mode", ctypes.c_uint32),
                ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32),
                ("nlink", ctypes.c_uint32), ("size", ctypes.c_uint64),
                ("atime_ns", ctypes.c_int64), ("mtime_ns", ctypes.c_int64),
                ("ctime_ns", ctypes.c_int64), ("version", ctypes.c_uint64),
                ("epoch", ctypes.c_uint64), ("birth", ctypes.c_uint64),
                ("rdev", ctypes.c_uint64)]


class _HistEntry(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_uint64), ("time_ns", ctypes.c_int64),
                ("source", ctypes.c_int), ("kind", ctypes.c_int),
                ("id", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class _EpochInfo(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_uint64), ("time_ns", ctypes.c_int64),
                ("source", ctypes.c_int), ("n_records", ctypes.c_uint32),
                ("bytes_changed", ctypes.c_uint64)]


class _Tag(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 65), ("epoch", ctypes.c_uint64),
                ("time_ns", ctypes.c_int64)]


_HIST_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_HistEntry))
_DIRENT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                              ctypes.POINTER(_Attr), ctypes.c_uint64)

Stat = namedtuple("Stat", "id parent type mode uid gid nlink size mtime_ns ctime_ns version epoch birth rdev")
Change = namedtuple("Change", "epoch time_ns source kind id path bytes")
EpochInfo = namedtuple("EpochInfo", "epoch time_ns source n_records bytes_changed")
Tag = namedtuple("Tag", "name epoch time_ns")

_lib = None


def load_library(path=None):
    """Load libmmsb (path, $MMSB_LIBRARY, or the system's libmmsb.so.0)."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    path = path or os.environ.get("MMSB_LIBRARY") or ctypes.util.find_library("mmsb") or "libmmsb.so.0"
    lib = ctypes.CDLL(path, use_errno=False)
    P, u64, sz = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
    sigs = {
        "mmsb_store_opts_init": (None, [P]),
        "mmsb_store_open": (ctypes.c_int, [ctypes.c_char_p, P, ctypes.POINTER(P)]),
        "mmsb_store_close": (None, [P]),
        "mmsb_store_head": (u64, [P]),
        "mmsb_store_oldest": (u64, [P]),
        "mmsb_snap_open": (ctypes.c_int, [P, u64, ctypes.POINTER(P)]),
        "mmsb_snap_close": (None, [P]),
        "mmsb_snap_resolve": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.POINTER(_Attr)]),
        "mmsb_snap_read": (ctypes.c_ssize_t, [P, u64, u64, P, sz]),
        "mmsb_snap_readdir": (ctypes.c_int, [P, u64, u64, _DIRENT_FN, P]),
        "mmsb_snap_path": (ctypes.c_ssize_t, [P, u64, ctypes.c_char_p, sz]),
        "mmsb_history": (ctypes.c_int, [P, u64, u64, u64, _HIST_FN, P]),
        "mmsb_epoch_info": (ctypes.c_int, [P, u64, ctypes.POINTER(_EpochInfo)]),
        "mmsb_tags": (ctypes.c_ssize_t, [P, ctypes.POINTER(_Tag), sz]),
        "mmsb_tag_get": (ctypes.c_int, [P, ctypes.c_char_p, ctypes.POINTER(u64)]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _lib = lib
    return lib


def _check(rc, what):
    if rc < 0:
        raise OSError(-rc, "%s: %s" % (what, os.strerror(-rc)))
    return rc


def _b(s):
    return s.encode() if isinstance(s, str) else s


class Store:
    """A store opened read-only.  Epochs are numbers, tag names or 'head'."""

    def __init__(self, path, library=None):
        self._lib = load_library(library)
        self._st = ctypes.c_void_p()
        opts = ctypes.create_string_buffer(_OPTS_BYTES)
        self._lib.mmsb_store_opts_init(opts)
        opts[_OPTS_CREATE] = 0
        opts[_OPTS_READ_ONLY] = 1
        _check(self._lib.mmsb_store_open(_b(os.fspath(path)), opts, ctypes.byref(self._st)),
               "open %s" % os.fspath(path))
        self.path = os.fspath(path)

    def close(self):
        if self._st:
            self._lib.mmsb_store_close(self._st)
            self._st = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if not self._st:
            raise ValueError("store is closed")
        return self._st

    @property
    def head(self):
        """The newest committed epoch."""
        return self._lib.mmsb_store_head(self._handle())

    @property
    def oldest(self):
        """The oldest retained epoch."""
        return self._lib.mmsb_store_oldest(self._handle())

    def epoch(self, e="head"):
        """An epoch number from a number, a tag name or 'head'."""
        if isinstance(e, int):
            return e
        if e == "head":
            return self.head
        if isinstance(e, str) and e.isdigit():
            return int(e)
        v = ctypes.c_uint64()
        _check(self._lib.mmsb_tag_get(self._handle(), _b(e), ctypes.byref(v)), "tag %s" % e)
        return v.value

    def _snap(self, e):
        snap = ctypes.c_void_p()
        n = self.epoch(e)
        _check(self._lib.mmsb_snap_open(self._handle(), n, ctypes.byref(snap)), "epoch %d" % n)
        return snap

    def _resolve(self, snap, path, e):
        a = _Attr()
        _check(self._lib.mmsb_snap_resolve(snap, _b(path), ctypes.byref(a)), "%s at epoch %s" % (path, e))
        return a

    def stat(self, path, epoch="head"):
        """Attributes of path at epoch, as a Stat (type: 'page', 'dir', 'symlink')."""
        snap = self._snap(epoch)
        try:
            a = self._resolve(snap, path, epoch)
        finally:
            self._lib.mmsb_snap_close(snap)
        return Stat(a.id, a.parent, _TYPES.get(a.type, a.type), a.mode, a.uid, a.gid, a.nlink,
                    a.size, a.mtime_ns, a.ctime_ns, a.version, a.epoch, a.birth, a.rdev)

    def read(self, path, epoch="head", offset=0, size=None):
        """The bytes of page path at epoch (all of them, or size from offset)."""
        snap = self._snap(epoch)
        try:
            a = self._resolve(snap, path, epoch)
            if a.type != 2:
                raise IsADirectoryError(_errno.EISDIR, "%s is not a page" % path)
            want = max(0, a.size - offset) if size is None else size
            buf = ctypes.create_string_buffer(max(want, 1))
            got = 0
            while got < want:
                n = _check(self._lib.mmsb_snap_read(snap, a.id, offset + got,
                                                    ctypes.byref(buf, got), want - got), "read %s" % path)
                if n == 0:
                    break
                got += n
            return buf.raw[:got]
        finally:
            self._lib.mmsb_snap_close(snap)

    def listdir(self, path="", epoch="head"):
        """Names in directory path at epoch, in the store's stable order."""
        snap = self._snap(epoch)
        names = []
        try:
            a = self._resolve(snap, path, epoch)

            def one(arg, name, attr, cookie):
                names.append(name.decode())
                return 0
            _check(self._lib.mmsb_snap_readdir(snap, a.id, 0, _DIRENT_FN(one), None), "readdir %s" % path)
        finally:
            self._lib.mmsb_snap_close(snap)
        return names

    def _path_of(self, node_id, e):
        """Path of node id at epoch e, or at e - 1 (for a removed node), else None."""
        for at in (e, e - 1):
            if at < self.oldest or at > self.head:
                continue
            snap = ctypes.c_void_p()
            if self._lib.mmsb_snap_open(self._handle(), at, ctypes.byref(snap)) < 0:
                continue
            try:
                buf = ctypes.create_string_buffer(4096)
                n = self._lib.mmsb_snap_path(snap, node_id, buf, len(buf))
                if n >= 0:
                    return buf.value.decode()
            finally:
                self._lib.mmsb_snap_close(snap)
        return None

    def _walk(self, node_id, since, until):
        out = []

        def one(arg, e):
            h = e.contents
            out.append((h.epoch, h.time_ns, _SOURCES.get(h.source, h.source),
                        _CHANGES.get(h.kind, h.kind), h.id, h.bytes))
            return 0
        _check(self._lib.mmsb_history(self._handle(), node_id, since, until, _HIST_FN(one), None), "history")
        return [Change(e, t, s, k, i, self._path_of(i, e), b) for (e, t, s, k, i, b) in out]

    def history(self, path, since=0, until=None):
        """Changes to the node at path (resolved at head), oldest first."""
        node = self.stat(path).id
        return self._walk(node, self.epoch(since), self.head if until is None else self.epoch(until))

    def feed(self, since=0, until=None):
        """The change feed: every change in epochs (since, until], oldest first,
        as Change tuples (path at that epoch; None when no longer known)."""
        lo = self.epoch(since) + 1
        hi = self.head if until is None else self.epoch(until)
        if lo > hi:
            return iter(())
        return iter(self._walk(0, lo, hi))

    def epoch_info(self, e):
        """What epoch e was: EpochInfo(epoch, time_ns, source, n_records, bytes_changed)."""
        info = _EpochInfo()
        n = self.epoch(e)
        _check(self._lib.mmsb_epoch_info(self._handle(), n, ctypes.byref(info)), "epoch %d" % n)
        return EpochInfo(info.epoch, info.time_ns, _SOURCES.get(info.source, info.source),
                         info.n_records, info.bytes_changed)

    def tags(self):
        """Tags, sorted by epoch."""
        n = _check(self._lib.mmsb_tags(self._handle(), None, 0), "tags")
        arr = (_Tag * max(n, 1))()
        n = min(n, _check(self._lib.mmsb_tags(self._handle(), arr, n), "tags"))
        return [Tag(arr[i].name.decode(), arr[i].epoch, arr[i].time_ns) for i in range(n)]
