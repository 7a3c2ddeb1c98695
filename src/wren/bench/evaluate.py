"""The local evaluation harness: for each prediction, a fresh workspace, the model's patch, the
instance's test patch, its tests, and a verdict in the shape of SWE-bench's report.

Resolved if and only if every FAIL_TO_PASS and PASS_TO_PASS test passes.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wren.bench.datasets import DatasetError
from wren.bench.specs import instance_spec, log_parser
from wren.bench.workspace import WorkspaceConfig, open_workspace
from wren.exceptions import ExecutionTimeoutError, Submitted

log = logging.getLogger(__name__)

RESOLVED, UNRESOLVED, PATCH_FAILED, ERROR = "resolved", "unresolved", "patch_failed", "error"
OUTCOMES = (RESOLVED, UNRESOLVED, PATCH_FAILED, ERROR)
PASSING = ("PASSED", "XFAIL")
# base64 chunks small enough for one command line anywhere (ARG_MAX per argument is 128 KiB).
_CHUNK = 48_000


class EvalConfig(BaseModel):
    """Settings of `wren eval`."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1)
    """Instances evaluated at once."""
    timeout: float = Field(default=1800.0, gt=0)
    """Seconds the tests of one instance may run."""
    environment: dict[str, Any] = Field(default_factory=lambda: {"environment_class": "local"})
    """Environment config for each instance (its cwd is set to the checkout)."""
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    """Where checkouts come from and how they are set up."""
    specs: dict[str, Any] = Field(default_factory=dict)
    """Per-repo (and per-version) overrides of install and test commands."""


def load_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """preds.json ({id: pred}), a list of preds, or JSONL; each pred has instance_id and model_patch."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DatasetError(f"cannot read predictions {path}: {e}") from e
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise DatasetError(f"predictions {path} are neither JSON nor JSONL: {e}") from e
    if isinstance(data, dict) and "model_patch" in data and "instance_id" in data:
        data = [data]  # one prediction (a one-line JSONL file)
    elif isinstance(data, dict):
        data = [
            {"instance_id": key, **value} if isinstance(value, dict) else value for key, value in data.items()
        ]
    preds: dict[str, dict[str, Any]] = {}
    for i, pred in enumerate(data if isinstance(data, list) else []):
        if not isinstance(pred, dict) or not pred.get("instance_id"):
            raise DatasetError(f"prediction {i} in {path} has no instance_id")
        patch = pred.get("model_patch")
        if patch is not None and not isinstance(patch, str):
            raise DatasetError(f"prediction {pred['instance_id']!r}: model_patch must be a string")
        preds[pred["instance_id"]] = pred
    if not preds and not isinstance(data, list | dict):
        raise DatasetError(f"predictions {path}: expected an object or a list")
    return preds


def write_file(env: Any, path: str, content: str) -> None:
    """Put `content` at `path` inside the environment, through commands only (works in any env)."""
    encoded = base64.b64encode(content.encode()).decode()
    staged = f"{path}.b64"
    env.execute(f": > {staged}")
    for start in range(0, len(encoded), _CHUNK):
        env.execute(f"printf %s {encoded[start : start + _CHUNK]} >> {staged}")
    result = env.execute(f"base64 -d {staged} > {path} && rm -f {staged}")
    if result["returncode"] != 0:
        raise RuntimeError(f"could not write {path}: {result['output']}")


def apply_patch(env: Any, patch: str, name: str) -> tuple[bool, str]:
    """Apply a patch in the environment's working directory; (applied, what git/patch said)."""
    # Inside .git: writable wherever the checkout is (a sandbox's /tmp is private per command),
    # and invisible to `git status` and `git diff`.
    path = f".git/wren-{name}-{secrets.token_hex(4)}.diff"
    write_file(env, path, patch if patch.endswith("\n") else patch + "\n")
    result = env.execute(
        f"git apply --verbose {path} 2>&1 || git apply --verbose --reject {path} 2>&1 "
        f"|| patch --batch --fuzz=5 -p1 -i {path} 2>&1; status=$?; rm -f {path}; exit $status"
    )
    return result["returncode"] == 0, result["output"]


def grade(inst: dict[str, Any], statuses: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """SWE-bench's tests_status: which FAIL_TO_PASS / PASS_TO_PASS tests now pass or fail."""

    def split(tests: list[str]) -> tuple[list[str], list[str]]:
        ok = [t for t in tests if statuses.get(t) in PASSING]
        return ok, [t for t in tests if t not in ok]

    f2p_ok, f2p_bad = split(inst["FAIL_TO_PASS"])
    p2p_ok, p2p_bad = split(inst["PASS_TO_PASS"])
    return {
        "FAIL_TO_PASS": {"success": f2p_ok, "failure": f2p_bad},
        "PASS_TO_PASS": {"success": p2p_ok, "failure": p2p_bad},
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }


def evaluate_instance(
    inst: dict[str, Any], pred: dict[str, Any], config: EvalConfig, out_dir: Path
) -> dict[str, Any]:
    """Evaluate one prediction; never raises for the instance's own failures (they are its outcome)."""
    instance_id = inst["instance_id"]
    out_dir.mkdir(parents=True, exist_ok=True)
    patch = pred.get("model_patch") or ""
    (out_dir / "patch.diff").write_text(patch)
    report: dict[str, Any] = {
        "patch_is_None": pred.get("model_patch") is None,
        "patch_exists": bool(patch.strip()),
        "patch_successfully_applied": False,
        "resolved": False,
        "outcome": ERROR,
        "repo": inst.get("repo", ""),
    }
    run_log: list[str] = []
    started = time.monotonic()
    try:
        spec = instance_spec(inst, config.specs)
        parse = log_parser(spec, inst)
        with open_workspace(inst, spec, config.environment, config.workspace) as ws:
            run_log += ws.setup_log
            if patch.strip():
                applied, said = apply_patch(ws.env, patch, "model")
                run_log += [">>>>> model_patch", said]
                if not applied:
                    report["outcome"] = PATCH_FAILED
                    report["error"] = "model_patch does not apply"
                    return report
            report["patch_successfully_applied"] = True
            if inst.get("test_patch", "").strip():
                applied, said = apply_patch(ws.env, inst["test_patch"], "test")
                run_log += [">>>>> test_patch", said]
                if not applied:
                    report["error"] = "test_patch does not apply (after model_patch)"
                    return report
            command = "\n".join([*spec.eval_commands, spec.test_cmd])
            run_log.append(f">>>>> tests: {command}")
            try:
                result = ws.env.execute(command, timeout=config.timeout)
            except ExecutionTimeoutError as e:
                (out_dir / "test_output.txt").write_text(e.output)
                report["error"] = f"tests timed out after {config.timeout:g} s"
                return report
            except Submitted as e:  # a test printing the submit marker is still just output
                result = {"output": str(e.submission), "returncode": 1}
            (out_dir / "test_output.txt").write_text(result["output"])
            statuses = parse(result["output"])
            report["tests_status"] = grade(inst, statuses)
            if not statuses:
                report["error"] = (
                    f"no per-test results in the test output (exit status {result['returncode']})"
                )
                return report
            status = report["tests_status"]
            resolved = not status["FAIL_TO_PASS"]["failure"] and not status["PASS_TO_PASS"]["failure"]
            report["resolved"] = resolved
            report["outcome"] = RESOLVED if resolved else UNRESOLVED
            return report
    except Exception as e:  # an instance that cannot be set up is an error verdict, not a crash of the run
        log.debug("instance %s failed", instance_id, exc_info=True)
        report["error"] = f"{type(e).__name__}: {e}"
        return report
    finally:
        report["duration_s"] = round(time.monotonic() - started, 3)
        run_log.append(f">>>>> outcome: {report['outcome']} {report.get('error', '')}")
        (out_dir / "run_instance.log").write_text("\n".join(run_log) + "\n")
        (out_dir / "report.json").write_text(json.dumps({instance_id: report}, indent=2))


def summarise(
    reports: dict[str, dict[str, Any]], dataset_ids: list[str], submitted: list[str]
) -> dict[str, Any]:
    """The run report: SWE-bench's fields, plus patch_failed and per-repo rates."""
    by = {o: sorted(i for i, r in reports.items() if r["outcome"] == o) for o in OUTCOMES}
    empty = sorted(i for i, r in reports.items() if not r["patch_exists"])
    repos: dict[str, dict[str, Any]] = {}
    for r in reports.values():
        entry = repos.setdefault(r.get("repo") or "?", {"total": 0, **{o: 0 for o in OUTCOMES}})
        entry["total"] += 1
        entry[r["outcome"]] += 1
    for entry in repos.values():
        entry["resolved_rate"] = round(entry[RESOLVED] / entry["total"], 4) if entry["total"] else 0.0
    return {
        "total_instances": len(dataset_ids),
        "submitted_instances": len(submitted),
        "completed_instances": len(by[RESOLVED]) + len(by[UNRESOLVED]),
        "resolved_instances": len(by[RESOLVED]),
        "unresolved_instances": len(by[UNRESOLVED]),
        "patch_failed_instances": len(by[PATCH_FAILED]),
        "empty_patch_instances": len(empty),
        "error_instances": len(by[ERROR]),
        "resolved_rate": round(len(by[RESOLVED]) / len(submitted), 4) if submitted else 0.0,
        "completed_ids": sorted(by[RESOLVED] + by[UNRESOLVED]),
        "incomplete_ids": sorted(set(dataset_ids) - set(submitted)),
        "submitted_ids": sorted(submitted),
        "resolved_ids": by[RESOLVED],
        "unresolved_ids": by[UNRESOLVED],
        "patch_failed_ids": by[PATCH_FAILED],
        "empty_patch_ids": empty,
        "error_ids": by[ERROR],
        "per_repo": dict(sorted(repos.items())),
        "schema_version": 2,
    }


def evaluate(
    instances: list[dict[str, Any]],
    predictions: dict[str, dict[str, Any]],
    config: EvalConfig,
    output: str | Path,
    *,
    on_done: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate every prediction whose instance is in `instances`; write the JSON and HTML reports."""
    from wren.bench.report import write_html
    from wren.bench.workspace import check_workspace_config

    check_workspace_config(config.environment, config.workspace)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    instance_dir = output.with_name(output.stem + ".instances")
    by_id = {inst["instance_id"]: inst for inst in instances}
    unknown = sorted(set(predictions) - set(by_id))
    if unknown:
        log.warning(
            "%d predictions are for instances not in the dataset: %s", len(unknown), ", ".join(unknown[:5])
        )
    todo = [i for i in predictions if i in by_id]
    reports: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(config.workers, 1)) as pool:
        futures = {
            pool.submit(evaluate_instance, by_id[i], predictions[i], config, instance_dir / i): i
            for i in todo
        }
        for future in as_completed(futures):
            instance_id = futures[future]
            report = future.result()
            with lock:
                reports[instance_id] = report
            if on_done is not None:
                on_done(instance_id, report)
    summary = summarise(reports, list(by_id), todo)
    summary["instances"] = {i: reports[i] for i in sorted(reports)}
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(output)
    write_html(summary, output.with_suffix(".html"))
    return summary
