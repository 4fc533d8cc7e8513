"""A normal install works (issue 17): ``pip install .`` — what a Dockerfile or a PaaS build
does — then ``preflight migrate`` and ``preflight desk list`` from another folder.

The wheel is built from a copy of the sources (nothing written into the checkout) and
installed without its dependencies into a fresh venv, which borrows them from the test's own
venv through a ``.pth`` file (offline and fast). The installed ``bot`` is the wheel's: a
``.pth`` line adds a folder to ``sys.path`` without running that folder's own ``.pth`` files,
so the checkout's editable install is not seen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_migrates_and_lists_from_another_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copytree(ROOT / "bot", source / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)], cwd=tmp_path)
    (wheel,) = wheels.glob("ib_preflight-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path))
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(str(site).strip()) / "_deps_from_the_test_venv.pth").write_text("\n".join(sorted(deps)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{elsewhere / 'p.db'}"}
    where = run([str(python), "-c", "import bot; print(bot.__file__)"], cwd=elsewhere, env=env)
    assert where.startswith(str(venv)), where  # the wheel's bot, not the checkout's
    preflight = str(venv / "bin" / "preflight")
    assert "up to date" in run([preflight, "migrate"], cwd=elsewhere, env=env)
    assert "No desks yet" in run([preflight, "desk", "list"], cwd=elsewhere, env=env)
