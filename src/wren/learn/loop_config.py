"""What one YAML file says of a closed loop (`wren learn loop`), and the configs of its stages made
from it. Every stage's settings are typed here, so a mistake in any of them is an error when the
loop's YAML is read, before any stage runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from wren.exceptions import ConfigError
from wren.learn.curriculum import CurriculumConfig
from wren.learn.data.demos import DemoSettings
from wren.learn.data.export import ExportConfig
from wren.learn.probe import EditCheck
from wren.learn.train.finetune import TrainConfig
from wren.synth.config import SynthConfig
from wren.validation import StrictModel, settings_of

_VARIANT_NAME = re.compile(r"[A-Za-z0-9._-]+")


# A demonstration as the run showed it (outputs capped by the SLM's history settings) is 1,700 to
# 2,800 tokens: each fits one record, every reply trained with the prompt it had.
MAX_TOKENS = 3072


# What the loop takes of each stage's config: everything but where it reads and writes, and (for
# training) which adapter it starts from, which the loop chooses round by round.
TrainSettings = settings_of(
    TrainConfig, ("model", "data", "output", "method", "init_adapter"), "TrainSettings"
)
SynthSettings = settings_of(
    SynthConfig, ("repo_dir", "output", "repos_dir", "max_tasks", "progress"), "SynthSettings"
)


class LoopConfig(StrictModel):
    """One closed loop, as one YAML file describes it."""

    work_dir: str
    """Where everything goes (tasks, runs, models, report); run again to resume."""
    train_repos: list[str] = Field(default_factory=list)
    """Repository directories whose synthesized tasks are trained on."""
    heldout_repos: list[str] = Field(default_factory=list)
    """Repository directories never trained on; their tasks measure the models."""
    repo_list: str = ""
    """Take the training and held-out repositories from a repository list instead of train_repos
    and heldout_repos: 'builtin' (Wren's own, `wren.synth.repos`) or the path of a list of that
    shape. Each sdist is downloaded from PyPI and unpacked as a git repository under WORK/sources
    (once; a stage of its own)."""
    repo_names: list[str] = Field(default_factory=list)
    """With repo_list: only these of the list (by PyPI name; [] = every one)."""
    base_model: str = ""
    """GGUF of the starting model ('' = the bundled Gemma-3-270M), or the URL (http://...) of an
    OpenAI-compatible server that serves it (vLLM behind the gateway, say): the base model's runs
    then go there, and base_training_dir must hold its weights for training."""
    slm: str = "gemma-3-270m"
    """Catalog or slm_providers entry whose configs every agent run uses (only its server is replaced)."""
    run_config: list[str] = Field(
        default_factory=lambda: [
            "agent.max_format_errors=3",
            "bench.eval_timeout=120",
            "bench.eval_retry_timeout=300",
        ]
    )
    """More settings for every run: YAML files or key=value, as `-c` takes them. Runs stop after 3
    format errors in a row (the SLM config allows 5): a base model that only rambles costs less. The
    judge gives a task's tests 120 s (`wren eval`'s default is SWE-bench's 1,800), then judges each
    run that timed out again, alone, with 300 s: a mutant or an edit that makes a suite hang (an
    unfixed range decoder in idna does) costs 7 minutes, not half an hour, while a large suite
    slowed by the runs beside it (idna's 6,430 tests took 60 to 110 s with four judges and the
    model server on two cores) still gets its verdict. A run that times out twice is not resolved."""
    base_training_dir: str = ""
    """A training directory already converted from base_model (skips the conversion, which takes minutes)."""
    init_adapter: str = ""
    """Round 0 trains on from this LoRA adapter over the base model instead of a new one, and the
    rollouts before it run with it: an adapter GGUF, a PEFT adapter directory, or a catalog entry
    that applies one (`wren-edit-270m` tunes Wren's shipped model further on your tasks). '' = a new
    adapter. The held-out `base` stays the untouched base model."""
    rounds: int = Field(default=1, ge=1)
    """Rounds of rollouts, training and evaluation. Every round trains one LoRA adapter over the
    base model further: round R starts from round R-1's adapter."""
    train_tasks: int = Field(default=18, ge=1)
    """Tasks synthesized per training repository (18 x 2: 24 demonstrations were learnt by heart)."""
    heldout_tasks: int = Field(default=30, ge=1)
    """Held-out tasks synthesized per held-out repository."""
    evaluate: bool = True
    """Evaluate every model on the held-out tasks. False: the loop trains and exports only; run it
    again with `evaluate=true` to add the evaluations (every finished stage is reused)."""
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    """Sampling seeds of the held-out evaluation (one run of every task per seed and model)."""
    evaluate_models: Literal["all", "last"] = "last"
    """Which tuned models the held-out evaluations (and eval_variants) measure beside the base
    model: the last round's only, or every round's. The next-step check probes every round."""
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
    demos: DemoSettings = Field(default_factory=DemoSettings)
    """How the demonstrations make their fix: checked edits (the fix and the tests in one command)
    and the share that first make a slip the tests catch, then undo it."""
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
    export_merged: bool = False
    """Also write each round's model with its adapter merged in, as one GGUF
    (`WORK/rounds/round-R/tuned.gguf`, stage `gguf-R`), to serve without the base GGUF. The loop
    itself serves the base GGUF with the round's adapter GGUF over it, except where base_model is a
    URL: there it serves the merged GGUF, which is then always written."""
    precision: Literal["f32", "f16", "q8_0"] = "q8_0"
    """Weights of the merged GGUF."""
    probe_tasks: int = Field(default=12, ge=0)
    """Held-out tasks whose demonstrations probe every model step by step (the held-out next-step
    check, `wren.learn.probe`): minutes where agent runs take an hour. 0: none. They are never
    trained on."""
    edit_check: EditCheck = Field(default_factory=EditCheck)
    """With the next-step check: replies sampled at each held-out demonstration's edit step, each
    applied in a fresh checkout and judged (pass@k at the fix, given a perfect run up to it). Off
    by default (`edit_check.samples=8` turns it on): it adds minutes per model on a CPU."""
    curriculum: CurriculumConfig | None = None
    """The hint curriculum (`wren.learn.curriculum`): every round samples the current model
    `samples` times on each training task at its family's rung, trains on the demonstrations
    (retold at `demo_levels`) and every judged success so far, and moves each family's rung; the
    held-out tasks are evaluated at every rung of `eval_levels`. None: rollouts once per task at
    the statements the tasks were synthesized with, one held-out evaluation."""
    eval_variants: dict[str, list[str]] = Field(default_factory=dict)
    """More held-out evaluations of every model, by name, each with its own extra settings (`-c`
    key=value), e.g. {unconstrained: [model.constrain=off]}: what a model does without the
    grammar's help. Added to a finished loop, only the new evaluations run."""

    @model_validator(mode="after")
    def _one_source_of_repositories(self) -> LoopConfig:
        if self.repo_list and (self.train_repos or self.heldout_repos):
            raise ValueError("give repo_list or train_repos/heldout_repos, not both")
        if self.base_model.startswith(("http://", "https://")) and not self.base_training_dir:
            raise ValueError(
                "a base_model served at a URL needs base_training_dir (its weights, to train on)"
            )
        if self.repo_names and not self.repo_list:
            raise ValueError("repo_names picks repositories of repo_list, which is not set")
        return self

    @field_validator("eval_variants")
    @classmethod
    def _variant_names_are_directory_names(cls, variants: dict[str, list[str]]) -> dict[str, list[str]]:
        # A name is a directory under WORK/eval/MODEL/ and part of stage names: no path in it.
        for name in variants:
            if not _VARIANT_NAME.fullmatch(name) or name in (".", ".."):
                raise ValueError(f"eval variant name {name!r}: use letters, digits, '.', '-' and '_'")
        return variants


BUILTIN_DIR = Path(__file__).with_name("builtin")


def builtin_configs() -> list[str]:
    """Names of the loop configs that ship with Wren (`wren learn loop -c NAME`)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def config_file(spec: str) -> str:
    """A `-c` item as a file: a built-in config's path for its bare name (when no such file
    exists here), anything else as given."""
    if "=" in spec or Path(spec).exists():
        return spec
    path = BUILTIN_DIR / f"{spec}.yaml"
    if path.is_file():
        return str(path)
    raise ConfigError(
        f"loop config {spec}: no such file, and no built-in loop config of that name ({', '.join(builtin_configs())})"
    )


def synth_config(
    config: LoopConfig, repo: str, output: Path, n: int, repos_dir: Path, test_cmd: str = ""
) -> SynthConfig:
    """`wren synth`'s config for one repository: the loop's synth settings, its workers unless they
    name their own, the repository's own test command where its list names one, and where the
    tasks go."""
    settings = config.synth.model_dump(exclude_unset=True)
    if test_cmd:
        settings.setdefault("test_cmd", test_cmd)
    return SynthConfig.model_validate(
        {"workers": max(1, config.workers), **settings}
        | {"repo_dir": repo, "output": str(output), "repos_dir": str(repos_dir)}
        | {"max_tasks": n, "progress": False}
    )


def train_config(
    settings: Any,
    model: str,
    data: Path,
    output: Path,
    method: str,
    *,
    init_adapter: str = "",
    merge: bool | None = None,
) -> TrainConfig:
    """A training run of the loop: `settings` (the loop's sft or dpo), on `model`, from `data`,
    going on from the adapter in `init_adapter` where one is given; `merge` (when given) says
    whether the merged model is written."""
    where = {
        "model": model,
        "data": str(data),
        "output": str(output),
        "method": method,
        "init_adapter": init_adapter,
    }
    if merge is not None:
        where["merge"] = merge
    return TrainConfig.model_validate(settings.model_dump() | where)
