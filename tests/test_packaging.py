"""The package as a user installs it: a wheel with its configs, console scripts, a pinned Lightning."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import requires, version

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT


def pinned(package: str) -> Requirement:
    """audioclf's requirement on `package`, as installed from pyproject.toml."""
    return next(r for r in map(Requirement, requires("audioclf")) if r.name == package and not r.marker)


def test_the_installed_lightning_is_in_the_tested_range():
    requirement, installed = pinned("lightning"), version("lightning")
    assert requirement.specifier, "pyproject.toml must pin lightning to the minor range the tests cover"
    assert requirement.specifier.contains(installed), (
        f"lightning {installed} is installed but audioclf is tested with lightning{requirement.specifier}: "
        "resume reads Lightning's private loop state (audioclf/lit/resume.py). Run the slow resume tests "
        "(make test-slow) on this version, then update the lightning pin in pyproject.toml, or "
        f"pip install 'lightning{requirement.specifier}'"
    )


def test_torch_and_torchaudio_are_pinned_as_a_pair():
    assert pinned("torch").specifier == pinned("torchaudio").specifier
    assert str(pinned("torch").specifier).startswith("==")


@pytest.mark.slow
def test_the_wheel_installs_and_trains_from_any_directory(tmp_path):
    """`pip install .` (not editable): the wheel holds the configs; audioclf-train runs outside the repo.

    The wheel is built with this venv's setuptools (no build isolation, which would fetch one), and the
    new venv borrows this venv's site-packages for the heavy dependencies (torch, lightning) through a
    .pth file; --no-index makes either step fail rather than reach the network. audioclf itself comes
    only from the wheel."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, timeout=300)
    wheel = next(wheels.glob("audioclf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "audioclf/conf/train.yaml" in names and "audioclf/conf/model/bcresnet.yaml" in names
    assert "hydra_plugins/audioclf_user_conf/__init__.py" in names  # the user's conf/ on Hydra's search path
    assert not any(name.startswith(("tools/", "tests/", "experiments/")) for name in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (target / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--no-deps", "--no-index", "-q", str(wheel)], check=True, timeout=300)

    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run(
        [str(venv / "bin" / "audioclf-train"), "model=tf_cnn", "data=synthetic", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "callbacks=none"],
        cwd=work, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((work / "logs" / "runs" / "train").glob("*/metrics.json"))
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import audioclf; print(audioclf.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not the checkout
