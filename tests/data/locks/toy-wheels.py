#!/usr/bin/env python3
"""Write the toy wheels the `uv.lock` fixtures next to this script are locked against.

Usage: toy-wheels.py OUTDIR

Seven tiny pure-Python wheels (py3-none-any), byte-for-byte reproducible (fixed zip
timestamps), whose metadata exercises what a uv.lock walk must handle: two versions of one
package (alpha 1.0 and 2.0, for forks and conflicts), an extra that adds a dependency
(beta[fast] -> gamma), and a platform marker (plat -> epsilon on Windows only).
Python standard library only.
"""

import base64
import hashlib
import os
import sys
import zipfile


def wheel(folder, name, version, requires=(), extras=()):
    dist = f"{name}-{version}"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode()}
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Provides-Extra: {extra}" for extra in extras]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files[f"{dist}.dist-info/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: toy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(folder, f"{dist}-py3-none-any.whl"), "w") as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: toy-wheels.py OUTDIR")
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    wheel(folder, "alpha", "1.0")
    wheel(folder, "alpha", "2.0")
    wheel(folder, "beta", "1.0", ["alpha", 'gamma ; extra == "fast"'], ["fast"])
    wheel(folder, "gamma", "1.0")
    wheel(folder, "delta", "1.0")
    wheel(folder, "epsilon", "1.0")
    wheel(folder, "plat", "1.0", ['epsilon ; sys_platform == "win32"'])


main()
