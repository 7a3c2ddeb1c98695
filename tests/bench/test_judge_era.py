"""Dependencies as they stood on a date (`packages_as_of`): the era SWE-bench instances default to,
and a real build against a loopback PEP 691 index whose files carry upload times (CI has no
network), where the dated spec gets the old release, an exact pin its own, and no date today's."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import zipfile
from pathlib import Path

import pytest

from tests.bench.test_judge_unseen import _config, _judge, make_instance
from wren.bench.specs import instance_spec, swebench_era
from wren.exceptions import ConfigError


@pytest.mark.parametrize(
    ("created_at", "era"),
    [
        ("2020-10-06T22:00:41Z", "2024-01-15"),
        ("2024-06-01T00:00:00Z", "2025-06-01"),
        (None, "2024-01-15"),
        ("not a date", "2024-01-15"),
        ("2999-01-01T00:00:00Z", ""),
    ],
)
def test_swebench_era(created_at, era):
    assert swebench_era({"created_at": created_at}) == era


def test_packages_as_of_must_be_a_date():
    inst = {"instance_id": "o__r-1", "repo": "o/r", "version": "1", "test_cmd": "pytest"}
    with pytest.raises(ConfigError, match="packages_as_of"):
        instance_spec(inst, {"o/r": {"packages_as_of": "2024-13-01"}})
    assert instance_spec(inst, {"o/r": {"packages_as_of": ""}}).packages_as_of == ""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel(out: Path, version: str) -> Path:
    info = f"wrenera-{version}.dist-info"
    files = {
        "wrenera/__init__.py": f'VERSION = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: wrenera\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},{len(t)}"
        for p, t in files.items()
    ]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = out / f"wrenera-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


class _Index(http.server.BaseHTTPRequestHandler):
    """`/simple/<project>/` as PEP 691 JSON, and `/files/<wheel>`; `server.wheels` is
    {file name: (path, upload time)}."""

    def do_GET(self) -> None:
        wheels = self.server.wheels  # type: ignore[attr-defined]
        host, port = self.server.server_address[:2]
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "files" and parts[1] in wheels:
            body, kind = wheels[parts[1]][0].read_bytes(), "application/octet-stream"
        elif len(parts) == 2 and parts[0] == "simple":
            files = [
                {
                    "filename": name,
                    "url": f"http://{host}:{port}/files/{name}",
                    "hashes": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                    "upload-time": uploaded,
                }
                for name, (path, uploaded) in sorted(wheels.items())
                if _canonical(name.split("-")[0]) == parts[1]
            ]
            if not files:
                self.send_error(404)
                return
            meta = {"meta": {"api-version": "1.1"}, "name": parts[1], "files": files}
            body, kind = json.dumps(meta).encode(), "application/vnd.pypi.simple.v1+json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def dated_index(tmp_path, shared_dirs, monkeypatch):
    """pip reads only a loopback index: the wheelhouse uploaded in 2019, wrenera 1.0 in 2020 and 2.0 in 2025."""
    (tmp_path / "wrenera").mkdir()
    wheels = {p.name: (p, "2019-01-01T00:00:00Z") for p in shared_dirs[0].glob("*.whl")}
    for version, uploaded in (("1.0", "2020-01-01T00:00:00Z"), ("2.0", "2025-01-01T00:00:00Z")):
        wheel = _wheel(tmp_path / "wrenera", version)
        wheels[wheel.name] = (wheel, uploaded)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    server.wheels = wheels  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # the machine's find-links and extra indexes
    for name in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
    server.shutdown()
    server.server_close()
    thread.join(10)


def _era_instance(repos: Path, name: str, expected: str) -> dict:
    return make_instance(
        repos,
        name,
        {
            "era/__init__.py": "def version():\n    return None\n",
            "tests/test_base.py": "def test_base():\n    pass\n",
        },
        {"era/__init__.py": "import wrenera\n\n\ndef version():\n    return wrenera.VERSION\n"},
        {
            "tests/test_era.py": f"from era import version\n\n\ndef test_version():\n    assert version() == {expected!r}\n"
        },
        test_cmd="python -m pytest -rA -p no:cacheprovider tests",
        FAIL_TO_PASS=["tests/test_era.py::test_version"],
        PASS_TO_PASS=["tests/test_base.py::test_base"],
    )


@pytest.mark.usefixtures("dated_index")
def test_dependencies_as_they_stood_on_the_specs_date(tmp_path):
    repos = tmp_path / "repos"
    old, pinned = _era_instance(repos, "era", "1.0"), _era_instance(repos, "pinned", "2.0")
    cases = [  # (name, instance, spec, outcome, wrenera installed)
        ("dated", old, {"pip_packages": ["wrenera"], "packages_as_of": "2021-01-01"}, "resolved", "1.0"),
        (
            "pin",
            pinned,
            {"pip_packages": ["wrenera==2.0"], "packages_as_of": "2021-01-01"},
            "resolved",
            "2.0",
        ),
        ("today", old, {"pip_packages": ["wrenera"], "packages_as_of": ""}, "unresolved", "2.0"),
    ]
    for name, inst, spec, outcome, version in cases:
        cache = tmp_path / "envs" / name
        config = _config(tmp_path, cache, specs={inst["repo"]: spec})
        report = _judge(inst, inst["patch"], config, tmp_path / f"{name}.json")
        assert report["outcome"] == outcome, (name, report)
        installed = [p.name for p in cache.glob("*/lib/python*/site-packages/wrenera-*.dist-info")]
        assert installed == [f"wrenera-{version}.dist-info"], name
        log = (tmp_path / f"{name}.instances" / inst["instance_id"] / "run_instance.log").read_text()
        dated = bool(spec["packages_as_of"])
        assert ("as they stood on 2021-01-01" in log) == dated, (name, log[-3000:])
        assert [p.read_text() for p in cache.glob("*/as-of.txt")] == ["2021-01-01\n"] * dated, name
