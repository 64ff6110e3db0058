"""The ``tritonserver`` binary bundled in the nvidia-pytriton wheel, made runnable here.

The wheel carries Triton (bin/tritonserver), its python backend (libtriton_python.so) and a
python-backend stub per Python version; its shared libraries live next to it in
``nvidia_pytriton.libs``. The stub embeds Python and takes its ``sys.prefix`` from the
first ``python3`` on PATH, so the models run in the environment PATH points at. That
environment is a separate one (``requirements-install.sh`` creates it): the stub of Triton
2.51 is built against numpy 1.x and misreads numpy 2 arrays.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from stemserve.core.errors import BackendUnavailableError

CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = CHECKOUT / "build" / "triton"  # generated, never committed
DEFAULT_PYTHON_ENV = DEFAULT_BUILD_DIR / "python-env"
INSTALL_HINT = "run server/triton/requirements-install.sh .venv/bin/python"


@dataclass(frozen=True)
class Bundle:
    executable: Path  # bin/tritonserver
    libs: Path  # the wheel's shared libraries
    python_backend: Path  # backends/python of the wheel
    stub: Path  # triton_python_backend_stub for this Python version


def find_bundle() -> Bundle:
    """Locate the wheel's Triton; BackendUnavailableError naming what is missing."""
    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        raise BackendUnavailableError(
            f"tritonserver must come from the nvidia-pytriton wheel, not installed: {INSTALL_HINT}"
        )
    package = Path(next(iter(found.submodule_search_locations)))
    root = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    bundle = Bundle(
        executable=root / "bin" / "tritonserver",
        libs=package.parent / "nvidia_pytriton.libs",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    missing = [
        str(path) for path in (bundle.executable, bundle.libs, bundle.python_backend, bundle.stub) if not path.exists()
    ]
    if missing:
        raise BackendUnavailableError(f"the nvidia-pytriton wheel must contain {missing} for Python {version}")
    return bundle


def prepare_backends(bundle: Bundle, build_dir: Path) -> Path:
    """A ``--backend-directory`` with the python backend and this Python's stub."""
    target = Path(build_dir) / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for source in [*bundle.python_backend.glob("*.so"), *bundle.python_backend.glob("*.py"), bundle.stub]:
        destination = target / source.name
        if not destination.exists() or destination.stat().st_mtime < source.stat().st_mtime:
            shutil.copy2(source, destination)
    return target.parent


def check_python_env(python_env: Path) -> Path:
    """The models' Python environment: a virtual environment with numpy<2 and onnxruntime."""
    python = Path(python_env) / "bin" / "python3"
    if not python.exists():
        raise BackendUnavailableError(
            f"the Triton models' Python environment must exist at {python_env}: {INSTALL_HINT}"
        )
    return Path(python_env)


def server_environment(bundle: Bundle, python_env: Path) -> dict[str, str]:
    """Environment of the tritonserver process: its libraries, and the models' Python."""
    env = dict(os.environ)
    libdirs = [str(bundle.libs)]
    libpython = sysconfig.get_config_var("LIBDIR")  # this interpreter's libpython, when built shared
    if libpython and Path(libpython, f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0").exists():
        libdirs.insert(0, libpython)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libdirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = os.pathsep.join([str(Path(python_env) / "bin"), env.get("PATH", "")])
    for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env
