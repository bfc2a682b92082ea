"""Wheels that let the real sweeps run on a GPU machine that has torch but not Ray, and no
network: Ray's cp312 wheel without the parts the sweeps never import (ray/jars, rllib, serve,
llm) and recompressed with LZMA, which pip reads (79 MB -> 31 MiB, leaving room under a 64 MiB
transfer limit for the 27 MiB IMDB tarball), plus the few pure dependencies such an image lacks. Run here (with network); on the GPU machine install the folder with
`pip install --no-index --no-deps --target /tmp/site .whl/*.whl` and set PYTHONPATH=/tmp/site.

    python benchmarks/device_wheels.py .whl
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

RAY = "ray==2.60.0"
# what Ray (core + tune) and rnnbench need beyond a torch/pandas/pyarrow image
EXTRA = [
    "jsonschema==4.25.1",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.36.2",
    "rpds-py==0.27.1",
    "tensorboardX==2.6.4",
    "pooch==1.8.2",
    "platformdirs==4.5.0",
    # ray.train (which ray.tune imports) needs pydantic
    "pydantic==2.11.9",
    "pydantic-core==2.33.2",
    "annotated-types==0.7.0",
    "typing-inspection==0.4.1",
    # tests/test_cuda_graphs.py on the device
    "pytest==9.2.0",
    "pytest-timeout==2.4.0",
    "pluggy==1.7.0",
    "iniconfig==2.3.1",
    "packaging==26.4",
    "pygments==2.21.0",
]
UNUSED = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/")
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def download(spec: str, folder: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(folder),
            spec,
        ],
        check=True,
    )


def strip(wheel: Path) -> None:
    """Rewrite the wheel without the UNUSED folders (and their RECORD lines), LZMA-compressed, in place."""
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_LZMA) as out:
        for item in src.infolist():
            if item.filename.startswith(UNUSED):
                continue
            data = src.read(item.filename)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"\n".join(line for line in data.split(b"\n") if not line.decode().startswith(UNUSED))
            entry = zipfile.ZipInfo(item.filename, item.date_time)
            entry.external_attr = item.external_attr  # file modes: Ray's gcs_server and raylet must stay executable
            out.writestr(entry, data, compress_type=zipfile.ZIP_LZMA)
    slim.replace(wheel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    folder.mkdir(parents=True, exist_ok=True)
    download(RAY, folder)
    strip(next(folder.glob("ray-*.whl")))
    for spec in EXTRA:
        download(spec, folder)
    total = sum(f.stat().st_size for f in folder.glob("*.whl"))
    print(f"{len(list(folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {folder}")


if __name__ == "__main__":
    main()
