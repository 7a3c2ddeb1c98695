"""The apptainer environment: the argv it builds always, real runs where apptainer is installed."""

from __future__ import annotations

import os

import pytest

from wren.environments import get_environment
from wren.environments.apptainer import ApptainerEnvironment, find_apptainer
from wren.exceptions import ConfigError, Submitted

# A directory image: the root file system that .ci/docker_setup.sh debootstraps.
ROOTFS = os.environ.get("WREN_ROOTFS_CACHE", "/var/cache/wren-rootfs")


def test_argv_binds_cwd_env_and_network(monkeypatch):
    env = ApptainerEnvironment(
        image="img.sif",
        executable="apptainer",
        binds=["/data:/data:ro"],
        network=False,
        env={"A": "1"},
    )
    argv, host_cwd, host_env = env.wrap("echo hi", "/work")
    assert argv[:4] == ["apptainer", "exec", "--contain", "--cleanenv"]
    assert argv[-4:] == ["img.sif", "bash", "-c", "echo hi"]
    assert argv[argv.index("--bind") : argv.index("--bind") + 2] == ["--bind", "/data:/data:ro"]
    assert argv[argv.index("--pwd") : argv.index("--pwd") + 2] == ["--pwd", "/work"]
    assert "none" in argv and host_cwd is None
    assert host_env["APPTAINERENV_A"] == "1" and host_env["SINGULARITYENV_A"] == "1"


def test_config_errors():
    with pytest.raises(ConfigError, match="environment.image"):
        ApptainerEnvironment(executable="apptainer")
    if not find_apptainer():
        with pytest.raises(ConfigError, match="apptainer"):
            ApptainerEnvironment(image="x.sif")


@pytest.mark.skipif(not find_apptainer(), reason="neither apptainer nor singularity is installed")
@pytest.mark.skipif(
    not os.path.isdir(ROOTFS), reason=f"no directory image at {ROOTFS} (.ci/docker_setup.sh makes it)"
)
def test_runs_commands_in_the_image(tmp_path):
    env = get_environment(
        {"environment_class": "apptainer", "image": ROOTFS, "binds": [f"{tmp_path}:/work"], "cwd": "/work"}
    )
    result = env.execute("echo hi > f.txt; cat /etc/debian_version >/dev/null && pwd; cd /; export X=1")
    assert result == {"output": "/work\n", "returncode": 0}
    assert (tmp_path / "f.txt").read_text() == "hi\n"
    assert env.execute('pwd; echo "${X:-unset}"')["output"] == "/work\nunset\n"
    with pytest.raises(Submitted):
        env.execute("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
