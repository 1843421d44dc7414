#!/usr/bin/env python3
"""test_python.py MKSTORE LIBMMSB PYDIR - the Python module (python/mmsb.py)
over libmmsb.so, against a store made by tests/lib/mkstore (see there for
its epochs)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

MKSTORE, LIB, PYDIR = sys.argv[1:4]
del sys.argv[1:4]
sys.path.insert(0, PYDIR)
import mmsb  # noqa: E402


class ModuleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = os.path.join(cls.tmp.name, "store")
        out = subprocess.run([MKSTORE, cls.dir], check=True, capture_output=True, text=True)
        cls.head = int(out.stdout)
        cls.st = mmsb.Store(cls.dir, library=LIB)

    @classmethod
    def tearDownClass(cls):
        cls.st.close()
        cls.tmp.cleanup()

    def test_abi(self):
        abi = json.loads(subprocess.run([MKSTORE, "--abi"], check=True, capture_output=True).stdout)
        self.assertLessEqual(abi["opts_size"], mmsb._OPTS_BYTES)
        self.assertEqual(abi["opts_create"], mmsb._OPTS_CREATE)
        self.assertEqual(abi["opts_read_only"], mmsb._OPTS_READ_ONLY)
        import ctypes
        self.assertEqual(abi["attr_size"], ctypes.sizeof(mmsb._Attr))
        self.assertEqual(abi["hist_size"], ctypes.sizeof(mmsb._HistEntry))
        self.assertEqual(abi["epoch_info_size"], ctypes.sizeof(mmsb._EpochInfo))
        self.assertEqual(abi["tag_size"], ctypes.sizeof(mmsb._Tag))

    def test_epochs(self):
        self.assertEqual(self.st.head, 5)
        self.assertEqual(self.head, 5)
        self.assertEqual(self.st.oldest, 0)
        self.assertEqual(self.st.epoch("first"), 1)
        self.assertEqual(self.st.tags(), [mmsb.Tag("first", 1, self.st.tags()[0].time_ns)])

    def test_read_any_epoch(self):
        self.assertEqual(self.st.read("hello.txt"), b"three\n")
        self.assertEqual(self.st.read("hello.txt", epoch=1), b"one\n")
        self.assertEqual(self.st.read("/hello.txt", epoch="first"), b"one\n")
        self.assertEqual(self.st.read("hello.txt", epoch=2), b"two\n")
        self.assertEqual(self.st.read("hello.txt", epoch=4), b"two\n")
        data = self.st.read("d/data.bin")
        self.assertEqual(len(data), 100000)
        self.assertEqual(data, bytes(i % 251 for i in range(100000)))
        self.assertEqual(self.st.read("d/data.bin", offset=99990, size=100), data[99990:])
        self.assertEqual(self.st.stat("d").type, "dir")
        self.assertEqual(self.st.stat("hello.txt", 1).size, 4)
        self.assertEqual(sorted(self.st.listdir("")), ["d", "hello.txt"])
        self.assertEqual(self.st.listdir("", epoch=2), ["hello.txt"])

    def test_errors(self):
        with self.assertRaises(FileNotFoundError):
            self.st.read("d/data.bin", epoch=3)   # created at 4
        with self.assertRaises(FileNotFoundError):
            self.st.read("hello.txt", epoch=99)   # beyond head
        with self.assertRaises(FileNotFoundError):
            self.st.read("nope")
        with self.assertRaises(FileNotFoundError):
            self.st.epoch("no-such-tag")
        with self.assertRaises(IsADirectoryError):
            self.st.read("d")
        with self.assertRaises(OSError):
            mmsb.Store(os.path.join(self.tmp.name, "missing"), library=LIB)

    def test_history(self):
        h = self.st.history("hello.txt")
        self.assertEqual([c.epoch for c in h if c.kind == "write"], [1, 2, 5])
        self.assertTrue(all(c.path == "hello.txt" and c.source == "user" for c in h))
        self.assertEqual([c.epoch for c in self.st.history("hello.txt", since=2, until=4)
                          if c.kind == "write"], [2])

    def test_feed(self):
        feed = list(self.st.feed())
        self.assertEqual(sorted({c.epoch for c in feed}), [1, 2, 3, 4, 5])
        self.assertIn(("create", "d"), [(c.kind, c.path) for c in feed if c.epoch == 3])
        nonzero = sum(1 for i in range(100000) if i % 251)  # only differing bytes count
        self.assertIn(("write", "d/data.bin", nonzero),
                      [(c.kind, c.path, c.bytes) for c in feed if c.epoch == 4])
        self.assertEqual({c.epoch for c in self.st.feed(since=3)}, {4, 5})
        self.assertEqual(list(self.st.feed(since=5)), [])
        info = self.st.epoch_info(4)
        self.assertEqual((info.epoch, info.source), (4, "user"))
        self.assertGreater(info.time_ns, 0)

    def test_closed(self):
        st = mmsb.Store(self.dir, library=LIB)
        with st:
            self.assertEqual(st.read("hello.txt", 2), b"two\n")
        with self.assertRaises(ValueError):
            st.head


if __name__ == "__main__":
    unittest.main(verbosity=2)
