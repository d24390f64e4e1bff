# envbuild's PEP 517 front end, run by the build venv's Python in the source folder.
# Usage: python hook.py BACKEND BACKEND_PATH_JSON MODE OUT
#   MODE `requires`: write the backend's get_requires_for_build_wheel() as JSON to OUT.
#   MODE `wheel`: build a wheel into the folder OUT and print its file name last.
import importlib
import json
import os
import sys

backend_spec, backend_path, mode, out = sys.argv[1:5]
for entry in reversed(json.loads(backend_path)):
    sys.path.insert(0, os.path.abspath(entry))
module_name, _, attribute = backend_spec.partition(":")
backend = importlib.import_module(module_name.strip())
for part in filter(None, attribute.strip().split(".")):
    backend = getattr(backend, part)

if mode == "requires":
    hook = getattr(backend, "get_requires_for_build_wheel", None)
    requires = list(hook({})) if hook is not None else []
    with open(out, "w", encoding="utf-8") as file:
        json.dump(requires, file)
elif mode == "wheel":
    name = backend.build_wheel(out, {})
    print()
    print("envbuild-built-wheel:" + name)
else:
    sys.exit("unknown mode " + mode)
