"""The local evaluation harness: for each prediction, a fresh workspace, the model's patch, the
instance's test patch, its tests, and a verdict in the shape of SWE-bench's report.

Resolved if and only if every FAIL_TO_PASS and PASS_TO_PASS test passes, in an environment the
judge has checked: the instance's own interpreter and packages, the package under test imported
from the workspace, no test failing for want of a network. Whenever it cannot vouch for a verdict
the outcome is `error`, with the reason.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from wren.bench import selfcheck
from wren.bench.collection import failures_from_environment
from wren.bench.datasets import DatasetError, parse_test_list
from wren.bench.envs import env_command
from wren.bench.isolation import Isolation, isolation
from wren.bench.offline import needing_network
from wren.bench.specs import InstanceSpec, instance_spec, log_parser, without_escapes
from wren.bench.workspace import Workspace, WorkspaceConfig, open_workspace, reinstall
from wren.environments.processes import end_workers
from wren.exceptions import ExecutionTimeoutError, Submitted
from wren.validation import StrictModel

log = logging.getLogger(__name__)

RESOLVED, UNRESOLVED, PATCH_FAILED, ERROR = "resolved", "unresolved", "patch_failed", "error"
OUTCOMES = (RESOLVED, UNRESOLVED, PATCH_FAILED, ERROR)
PASSING = ("PASSED", "XFAIL")
# base64 chunks small enough for one command line anywhere (ARG_MAX per argument is 128 KiB).
_CHUNK = 48_000
# Files whose change makes the package be installed again after the model's patch (as SWE-bench's
# eval script always does): how it is built, its compiled parts.
_PACKAGING = re.compile(
    r"^diff --git a/\S+ b/(\S*(setup\.py|setup\.cfg|pyproject\.toml|MANIFEST\.in|\.pyx|\.pxd|\.c|\.cpp|\.h))$",
    flags=re.MULTILINE,
)


class EvalConfig(StrictModel):
    """Settings of `wren eval`."""

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
    spec_overrides: str = ""
    """Versioned overrides file merged under `specs` ('' = the one shipped with Wren, 'none' = none)."""
    network: bool = False
    """Tests may use the network; without it a test failing for want of one makes the outcome `error`."""
    retry_timeout: float = Field(default=0.0, ge=0)
    """Seconds for a second try of each instance whose tests timed out, judged alone after the others
    (0: no second try). A suite that is only slow while it shares the machine then gets a verdict;
    one that hangs is still an error."""
    empty_patches: Literal["run", "unresolved"] = "run"
    """`run`: an empty patch's tests run like any other's (what trusting the judge needs); `unresolved`:
    it is unresolved without running them, as SWE-bench's harness does (its FAIL_TO_PASS fail before a fix)."""


def judge_config(cfg: Any, **overrides: Any) -> EvalConfig:
    """The judge's settings for runs made with `cfg` (a BenchWrenConfig): its environment,
    workspace, specs and test timeout, as `wren eval -c` with the same config would use."""
    bench = cfg.bench
    settings: dict[str, Any] = {
        "timeout": bench.eval_timeout,
        "environment": dict(cfg.environment),
        "workspace": bench.workspace,
        "specs": bench.specs,
        "spec_overrides": bench.spec_overrides,
        "empty_patches": bench.eval_empty_patches,
        "retry_timeout": bench.eval_retry_timeout,
    }
    return EvalConfig(**{**settings, **overrides})


def spec_for(inst: dict[str, Any], config: EvalConfig) -> InstanceSpec:
    """The instance's spec with the configured overrides."""
    overrides = None if config.spec_overrides == "none" else config.spec_overrides
    return instance_spec(inst, config.specs, spec_overrides=overrides)


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

    f2p_ok, f2p_bad = split(parse_test_list(inst.get("FAIL_TO_PASS")))
    p2p_ok, p2p_bad = split(parse_test_list(inst.get("PASS_TO_PASS")))
    return {
        "FAIL_TO_PASS": {"success": f2p_ok, "failure": f2p_bad},
        "PASS_TO_PASS": {"success": p2p_ok, "failure": p2p_bad},
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }


def _check_environment(
    ws: Workspace, spec: InstanceSpec, inst: dict[str, Any], run_log: list[str], iso: Isolation
) -> None:
    """Where python, the test runner and the package under test resolve; raises when not the instance's."""
    from pathlib import Path

    package = spec.package
    if not package and ws.venv is not None:
        package = selfcheck.package_name(Path(ws.repo_dir), inst.get("repo", ""))
    runner = selfcheck.test_runner(spec.test_cmd)
    command = "\n".join([*spec.eval_commands, selfcheck.check_command(package, runner)])
    if ws.test_environ is not None:
        command = iso.wrap(env_command(command, ws.test_environ))
    result = ws.env.execute(command, timeout=300)
    found = selfcheck.verify(ws, result["output"], package, runner)
    run_log.append(
        f">>>>> environment: python {found['python'] or '?'}, runner {found['runner'] or runner or '?'}, "
        f"package {package or '(none detected)'} from {found['package'] or '?'}"
    )


def _isolation(ws: Workspace, spec: InstanceSpec, config: EvalConfig, out_dir: Path) -> Isolation:
    """Tests on the host run without a network (unless allowed) and see the spec's CPUs."""
    kind = str(config.environment.get("environment_class") or "local")
    if ws.test_environ is None or kind != "local":
        return Isolation()
    scratch = Path(ws.venv).parent / "isolation" if ws.venv is not None else out_dir / "isolation"
    return isolation(cut_network=not config.network, cpus=spec.cpus, scratch=scratch)


def _network_state(iso: Isolation, config: EvalConfig) -> str:
    if config.network:
        return "allowed"
    kind = str(config.environment.get("environment_class") or "local")
    return (
        "cut" if iso.network_cut else ("not cut" if kind == "local" else f"as the {kind} environment has it")
    )


_NO_MODULE = re.compile(r"No module named '([A-Za-z0-9_]+)")


def _left_out_imported(left_out: list[str], output: str) -> list[str]:
    """The left-out requirements that the test output shows a missing import of."""
    names = {re.sub(r"[-_.]+", "", re.split(r"[<>=!~\[ ;]", r)[0]).lower(): r for r in left_out}
    missing = {re.sub(r"_", "", m.group(1)).lower() for m in _NO_MODULE.finditer(output)}
    return [names[n] for n in sorted(missing) if n in names]


_SKIP_LINE = re.compile(r"^SKIPPED \[\d+\] [^:]+:\d+: (.+)$", flags=re.MULTILINE)


def _skipped(tests: list[str], statuses: dict[str, str], output: str) -> list[str]:
    """The tests that were skipped: a SKIPPED status, or no status of their own while pytest's
    summary skips something in their file (`-rA` names a skip's file and line, not its test)."""
    skipped_files = {m.group(1) for m in re.finditer(r"^SKIPPED \[\d+\] ([^:]+):\d+:", output, re.MULTILINE)}
    return [
        t
        for t in tests
        if statuses.get(t) == "SKIPPED" or (t not in statuses and t.split("::")[0] in skipped_files)
    ]


def _skip_reason(output: str) -> str:
    """The reasons pytest gave for skipping (`-rA` summary lines), for the error message."""
    reasons = list(dict.fromkeys(m.group(1).strip() for m in _SKIP_LINE.finditer(output)))
    return f" (pytest: {'; '.join(reasons[:3])})" if reasons else ""


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
    if inst.get("hint_level") is not None:
        report["hint_level"] = inst["hint_level"]
    run_log: list[str] = []
    started = time.monotonic()
    try:
        if not report["patch_exists"] and config.empty_patches == "unresolved":
            report |= {"outcome": UNRESOLVED, "patch_successfully_applied": True, "tests_run": False}
            run_log.append(">>>>> empty patch: unresolved without running the tests")
            return report
        spec = spec_for(inst, config)
        report["spec"] = spec.source
        parse = log_parser(spec, inst)
        with open_workspace(
            inst, spec, config.environment, config.workspace, judge=True, network=config.network
        ) as ws:
            run_log = ws.setup_log  # later set-up steps (a reinstall) land in the same log
            if ws.notes:
                report["not_honoured"] = ws.notes
            if patch.strip():
                applied, said = apply_patch(ws.env, patch, "model")
                run_log += [">>>>> model_patch", said]
                if not applied:
                    report["outcome"] = PATCH_FAILED
                    report["error"] = "model_patch does not apply"
                    return report
                if _PACKAGING.search(patch):
                    run_log.append(">>>>> the patch changes packaging files: installing again")
                    reinstall(ws, spec, config.workspace.setup_timeout)
            report["patch_successfully_applied"] = True
            if inst.get("test_patch", "").strip():
                applied, said = apply_patch(ws.env, inst["test_patch"], "test")
                run_log += [">>>>> test_patch", said]
                if not applied:
                    report["error"] = "test_patch does not apply (after model_patch)"
                    return report
            iso = _isolation(ws, spec, config, out_dir)
            report["isolation"] = {"network": _network_state(iso, config), "cpus": iso.cpus}
            if iso.notes:
                report["not_honoured"] = [*report.get("not_honoured", []), *iso.notes]
                run_log += [f">>>>> isolation: {note}" for note in iso.notes]
            try:
                _check_environment(ws, spec, inst, run_log, iso)
            except selfcheck.EnvironmentCheckError as e:
                report["error"] = f"environment check: {e}"
                return report
            command = "\n".join([*spec.eval_commands, spec.test_cmd])
            run_log.append(f">>>>> tests: {command}")
            if ws.test_environ is not None:
                command = iso.wrap(env_command(command, ws.test_environ))
            try:
                result = ws.env.execute(command, timeout=config.timeout)
            except ExecutionTimeoutError as e:
                (out_dir / "test_output.txt").write_text(e.output)
                report["error"] = f"tests timed out after {config.timeout:g} s"
                report["timed_out"] = True
                return report
            except Submitted as e:  # a test printing the submit marker is still just output
                result = {"output": str(e.submission), "returncode": 1}
            # Colour codes (a project's own `--color=yes`) would hide test names from every check below.
            output = without_escapes(result["output"])
            (out_dir / "test_output.txt").write_text(output)
            statuses = parse(output)
            report["tests_status"] = grade(inst, statuses)
            if not statuses:
                report["error"] = (
                    f"no per-test results in the test output (exit status {result['returncode']})"
                )
                return report
            status = report["tests_status"]
            failing = status["FAIL_TO_PASS"]["failure"] + status["PASS_TO_PASS"]["failure"]
            offline = needing_network(output, failing)
            if offline and not config.network:
                report["needs_network"] = offline
                report["error"] = f"needs network: {', '.join(offline[:10])}" + (
                    f" and {len(offline) - 10} more" if len(offline) > 10 else ""
                )
                return report
            absent = [f for f in ws.missing_files if f in output]
            if failing and absent:
                report["error"] = (
                    f"the repository mirror lacks files the tests read: {', '.join(absent[:5])} "
                    f"(failing: {', '.join(failing[:5])})"
                )
                return report
            wanted = _left_out_imported(ws.left_out, output) if failing else []
            if wanted:
                report["error"] = (
                    "the tests import what the environment could not install (left out of "
                    f"environment.yml's translation): {', '.join(wanted)}"
                )
                return report
            broken = failures_from_environment(output, patch, failing)
            if broken:
                report["error"] = "the tests cannot be collected in this environment: " + "; ".join(
                    f"{file}: {error}" for file, error in list(broken.items())[:3]
                )
                return report
            skipped = _skipped(status["PASS_TO_PASS"]["failure"], statuses, output)
            if skipped and set(failing) <= set(skipped):
                # It passed where the labels were made: skipping here says the environment differs.
                report["skipped_here"] = skipped
                report["error"] = (
                    f"PASS_TO_PASS skipped in this environment: {', '.join(skipped[:5])}"
                    + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
                    + _skip_reason(output)
                )
                return report
            resolved = not failing
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


def per_hint_level(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Outcomes and resolve rate per hint level ("L0" to "L4"), for the instances whose task has one."""
    levels: dict[str, dict[str, Any]] = {}
    for r in reports.values():
        if r.get("hint_level") is None:
            continue
        entry = levels.setdefault(f"L{r['hint_level']}", {"total": 0, **{o: 0 for o in OUTCOMES}})
        entry["total"] += 1
        entry[r["outcome"]] += 1
    for entry in levels.values():
        entry["resolved_rate"] = round(entry[RESOLVED] / entry["total"], 4)
    return dict(sorted(levels.items()))


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
    levels = per_hint_level(reports)
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
        **({"per_hint_level": levels} if levels else {}),
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
    pool = ThreadPoolExecutor(max_workers=max(config.workers, 1), thread_name_prefix="wren-eval")
    try:
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
    except BaseException:
        # Ctrl-C or a stop signal: nothing new starts, and the tests running now are ended so their
        # workers close their environments (containers, checkouts) promptly.
        pool.shutdown(wait=False, cancel_futures=True)
        end_workers("wren-eval")
        raise
    pool.shutdown(wait=True)
    if config.retry_timeout:
        alone = config.model_copy(update={"timeout": config.retry_timeout})
        for instance_id in sorted(i for i, r in reports.items() if r.get("timed_out")):
            first = reports[instance_id]["error"]
            report = evaluate_instance(
                by_id[instance_id], predictions[instance_id], alone, instance_dir / instance_id
            )
            reports[instance_id] = report | {"first_try": first}
            if on_done is not None:
                on_done(instance_id, reports[instance_id])
    summary = summarise(reports, list(by_id), todo)
    summary["instances"] = {i: reports[i] for i in sorted(reports)}
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(output)
    write_html(summary, output.with_suffix(".html"))
    return summary


def _deciding_tests(report: dict[str, Any], key: str) -> list[str]:
    status = report.get("tests_status") or {}
    return list((status.get("FAIL_TO_PASS") or {}).get(key, [])) + list(
        (status.get("PASS_TO_PASS") or {}).get(key, [])
    )


def _first_line(report: dict[str, Any]) -> str:
    """An error's first line (set-up errors carry the command's output after it)."""
    lines = (report.get("error") or "").strip().splitlines()
    return lines[0] if lines else ""


def _untrusted_reason(gold: dict[str, Any], empty: dict[str, Any]) -> tuple[str, list[str]]:
    """Why the judge can't be trusted on one instance ('' when it can), and the tests that decided it."""
    if gold["outcome"] != RESOLVED:
        if gold["outcome"] == UNRESOLVED:
            failing = _deciding_tests(gold, "failure")
            return f"gold patch unresolved: {len(failing)} test(s) fail with it", failing
        return f"gold patch {gold['outcome']}: {_first_line(gold)}".rstrip(": "), gold.get(
            "needs_network", []
        )
    if empty["outcome"] == RESOLVED:
        passing = empty["tests_status"]["FAIL_TO_PASS"]["success"]
        return "empty patch resolved: its FAIL_TO_PASS tests pass without a fix", passing
    return "", []


def label_problems(gold: dict[str, Any], empty: dict[str, Any]) -> list[str]:
    """Why an instance's labels cannot be right, from runs whose tests ran (errors say nothing):
    FAIL_TO_PASS tests that pass without the fix, or that fail with it while everything else passes."""
    problems = []
    if empty["outcome"] in (RESOLVED, UNRESOLVED) and empty.get("tests_status"):
        passing = empty["tests_status"]["FAIL_TO_PASS"]["success"]
        if passing:
            problems.append(f"FAIL_TO_PASS passes without the fix: {', '.join(passing[:5])}")
    if gold["outcome"] == UNRESOLVED and gold.get("tests_status"):
        status = gold["tests_status"]
        if status["FAIL_TO_PASS"]["failure"] and not status["PASS_TO_PASS"]["failure"]:
            failing = status["FAIL_TO_PASS"]["failure"]
            problems.append(f"FAIL_TO_PASS fails with the fix: {', '.join(failing[:5])}")
    return problems


def _reason_kind(text: str) -> str:
    """What a reason is about, without the tests and paths it names (for grouping)."""
    text = re.sub(r"\(\d+\)|\d+ test\(s\)", "", text)
    return text.split(": ")[0].strip() if text.count(": ") else text.strip()


def trust_table(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per repository: instances, gold resolved, empty resolved, errors (gold and empty), instances
    whose labels cannot be right, and the reasons the judge gave no trusted verdict, grouped."""
    table: dict[str, dict[str, Any]] = {}
    for instance_id, row in sorted(rows.items()):
        entry = table.setdefault(
            row.get("repo") or "?",
            {"instances": 0, "gold_resolved": 0, "empty_resolved": 0, "gold_error": 0, "empty_error": 0,
             "labels_flagged": 0, "reasons": {}},
        )  # fmt: skip
        entry["instances"] += 1
        entry["gold_resolved"] += row["gold"] == RESOLVED
        entry["empty_resolved"] += row["empty"] == RESOLVED
        entry["gold_error"] += row["gold"] == ERROR
        entry["empty_error"] += row["empty"] == ERROR
        entry["labels_flagged"] += bool(row.get("labels"))
        kinds = [f"label: {_reason_kind(p)}" for p in row.get("labels", [])]
        if row["reason"] and not kinds:
            detail = row.get("gold_error") if row["gold"] == ERROR else ""
            kinds.append(
                f"gold {row['gold']}: {_reason_kind(detail)}" if detail else _reason_kind(row["reason"])
            )
        if row.get("note"):
            kinds.append("empty error: " + _reason_kind(row["note"].removeprefix("empty patch error: ")))
        for kind in kinds:
            entry["reasons"].setdefault(kind, []).append(instance_id)
    return table


def validate_dataset(
    instances: list[dict[str, Any]],
    config: EvalConfig,
    output: str | Path,
    *,
    on_done: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Judge every instance's gold patch and an empty patch; the instances where the judge can't be
    trusted (gold not resolved, or empty resolved) are `untrusted`, with the tests that decided.
    An empty patch judged `error` is noted on its row (`note`) without making it untrusted. Each row
    also lists the instance's `labels` that cannot be right, and `per_repo` is the trust table."""
    output = Path(output)
    # Whether the judge can be trusted is decided by what an empty patch's tests do: they run.
    config = config.model_copy(update={"empty_patches": "run"})
    runs: dict[str, dict[str, Any]] = {}
    for kind in ("gold", "empty"):
        preds = {
            inst["instance_id"]: {
                "instance_id": inst["instance_id"],
                "model_name_or_path": kind,
                "model_patch": inst.get("patch", "") if kind == "gold" else "",
            }
            for inst in instances
        }

        def tagged(instance_id: str, report: dict[str, Any], kind: str = kind) -> None:
            if on_done is not None:
                on_done(f"{instance_id} ({kind})", report)

        runs[kind] = evaluate(
            instances, preds, config, output.with_name(f"{output.stem}.{kind}.json"), on_done=tagged
        )
    rows: dict[str, dict[str, Any]] = {}
    untrusted = []
    for inst in instances:
        instance_id = inst["instance_id"]
        gold, empty = runs["gold"]["instances"][instance_id], runs["empty"]["instances"][instance_id]
        reason, tests = _untrusted_reason(gold, empty)
        labels = label_problems(gold, empty)
        rows[instance_id] = {
            "repo": inst.get("repo", ""),
            "gold": gold["outcome"],
            "empty": empty["outcome"],
            "trusted": not reason,
            "reason": reason,
            "tests": tests,
            "labels": labels,
            "spec": gold.get("spec", ""),
        }
        if gold["outcome"] == ERROR:
            rows[instance_id]["gold_error"] = _first_line(gold)
        if empty["outcome"] == ERROR:
            # Not a wrong verdict (an error never counts as resolved), but worth knowing.
            rows[instance_id]["note"] = f"empty patch error: {_first_line(empty)}"
        if reason:
            untrusted.append({"instance_id": instance_id, "reason": reason, "tests": tests})
    result = {
        "total_instances": len(instances),
        "trusted_instances": len(instances) - len(untrusted),
        "untrusted": untrusted,
        "gold_report": str(output.with_name(f"{output.stem}.gold.json")),
        "empty_report": str(output.with_name(f"{output.stem}.empty.json")),
        "per_repo": trust_table(rows),
        "instances": rows,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    return result
