"""Can the server use the device it is told to, with the environment it will run in?

    python -m whisper_server.devcheck [--device cuda] [--compute-type auto]

Run with the unit's own environment (its LD_LIBRARY_PATH) before a restart, so that a GPU box whose
CUDA libraries do not load is found before the running server is stopped, not by a unit that
crash-loops afterwards. Prints one JSON object; exits 0 when the device is usable, 1 when not (the
object's "error" says why and how to fix it), 2 on bad arguments. Loads no model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from whisper_server.config import Config
from whisper_server.engine.device import (
    CUDA_LIBRARIES,
    SYSTEM_PROBE,
    ModelLoadError,
    Probe,
    choose_device,
    gpu_name,
    resolve_compute_type,
)


def check(device: str, compute_type: str, probe: Probe = SYSTEM_PROBE) -> dict:
    """What the server would load with, or why it could not."""
    report: dict = {
        "device_asked": device,
        "device": None,
        "compute_type": None,
        "compute_types": [],
        "gpus": 0,
        "gpu": None,
        "libraries": {},
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "error": None,
    }
    config = Config(model="-", device=device, compute_type=compute_type)
    try:
        if device != "cpu":
            report["gpus"] = probe.cuda_device_count()
            libraries = CUDA_LIBRARIES if report["gpus"] else ()
            report["libraries"] = {lib: probe.can_load_library(lib) for lib in libraries}
        chosen, warnings = choose_device(config, probe)
        report["device"] = chosen
        report["warnings"] = warnings
        report["compute_types"] = sorted(probe.supported_compute_types(chosen))
        report["compute_type"] = resolve_compute_type(config, chosen, probe)
        if chosen == "cuda":
            report["gpu"] = gpu_name()
    except ModelLoadError as exc:
        report["error"] = str(exc)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_server.devcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=os.environ.get("WHISPER_DEVICE", "auto"), choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compute-type", default=os.environ.get("WHISPER_COMPUTE_TYPE", "auto"))
    args = parser.parse_args(argv)
    report = check(args.device, args.compute_type)
    print(json.dumps(report, sort_keys=True))
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
