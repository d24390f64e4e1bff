"""hello-service: a tiny Flask app that touches every locked package and prints a report.

Run inside the image built by scripts/example (envbuild.toml adds it at /app/app.py):
    python /app/app.py
It serves one request through Flask's test client (no network needed) and prints JSON.
"""

import importlib.metadata
import json
import sys

import backports.tarfile
import blinker
import certifi
import charset_normalizer
import click
import flask
import idna
import itsdangerous
import jaraco.context
import jaraco.functools
import jinja2
import markupsafe
import more_itertools
import requests
import urllib3
import werkzeug
import yaml

app = flask.Flask(__name__)
served = blinker.signal("served")


@app.get("/hello/<name>")
def hello(name):
    page = jinja2.Template("Hello, {{ name }}!").render(name=markupsafe.escape(name))
    served.send(app, name=name)
    return {
        "message": page,
        "token": itsdangerous.URLSafeSerializer("not-a-secret").dumps(name),
        "chunks": ["".join(c) for c in more_itertools.chunked(name, 3)],
        "idna": idna.encode("bücher.example").decode(),
    }


def main():
    seen = []
    served.connect(lambda sender, name: seen.append(name), weak=False)
    with app.test_client() as client:
        reply = client.get("/hello/envbuild").get_json()
    request = requests.Request("GET", "http://127.0.0.1/", params={"q": "x"}).prepare()
    detected = charset_normalizer.from_bytes("héllo wörld, ça va?".encode("utf-8")).best()
    report = {
        "reply": reply,
        "signals": seen,
        "request_url": request.url,
        "charset": detected.encoding if detected else None,
        "yaml": yaml.safe_dump({"service": "hello"}).strip(),
        "libyaml": yaml.__with_libyaml__,
        "markupsafe_speedups": markupsafe._escape_inner.__module__ == "markupsafe._speedups",
        "ca_bundle": certifi.where(),
        "urllib3": urllib3.__version__,
        "click": click.style("ok", bold=True) != "",
        "flask": flask.Flask.__name__,
        "werkzeug": werkzeug.__name__,
        "jaraco": jaraco.functools.compose(str.upper, str.strip)("  ok  "),
        "context": jaraco.context.__name__,
        "tarfile": backports.tarfile.__name__,
        "python": sys.version.split()[0],
        "prefix": sys.prefix,
        "versions": {
            dist.metadata["Name"]: dist.version
            for dist in sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"].lower())
        },
    }
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
