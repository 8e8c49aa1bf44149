#!/usr/bin/env bash
# gpu-check.sh: checks the CUDA backend on a GPU machine that has no .NET SDK and no network.
#   scripts/gpu-check.sh pack   (here)  publishes the hal command self-contained for linux-x64 and packs it into
#                                       .gpu/hal.tar.xz (kept well under 60 MiB so it travels with the repository)
#   scripts/gpu-check.sh run    (there) unpacks it, finds libcuda / libcublas / libnccl, runs hal devices, the cuda
#                                       conformance suite, the bf16 GEMM bench and a short training run, saving every
#                                       output under $OUT (default .gpu/out) and printing a summary.
# run stops early, with the probe's reason, when the cuda backend is unavailable (e.g. "no CUDA driver").
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_DIR="$ROOT/.gpu"
TARBALL="$GPU_DIR/hal.tar.xz"
MAX_TARBALL_BYTES=$((60 * 1024 * 1024))

die() {
    echo "gpu-check: $*" >&2
    exit 1
}

pack() {
    command -v dotnet > /dev/null 2>&1 || die "pack needs the .NET SDK (dotnet on PATH)"
    local publish="$GPU_DIR/publish"
    rm -rf "$publish" "$TARBALL"
    mkdir -p "$GPU_DIR"
    echo "gpu-check: publishing Cli (Release, linux-x64, self-contained)"
    dotnet publish "$ROOT/Cli" -c Release -r linux-x64 --self-contained -o "$publish" -p:DebugType=none -p:HalExcludeOnnxNatives=true -nologo -v quiet \
        || die "dotnet publish failed"
    # The npu backend's ONNX Runtime natives are hundreds of MiB and unused by this check: the publish property above
    # leaves them out; anything left from another runtime folder goes here.
    find "$publish" \( -name 'libonnxruntime*' -o -name 'onnxruntime*.dll' -o -name 'libonnxruntime_providers*' \) -delete
    rm -rf "$publish/runtimes/win"* "$publish/runtimes/osx"* "$publish/runtimes/linux-arm"* 2> /dev/null
    echo "gpu-check: packing $(du -sh "$publish" | cut -f1) into $TARBALL"
    tar -C "$publish" -cf - . | xz -T0 -6 > "$TARBALL" || die "packing failed"
    rm -rf "$publish"
    # The OpenCL ICD loader (Debian's ocl-icd), for a GPU machine whose image has the NVIDIA OpenCL driver but no
    # loader: run points it at the driver with OCL_ICD_VENDORS.
    if [[ -e /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 ]]; then
        mkdir -p "$GPU_DIR/ocl"
        cp -L /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 "$GPU_DIR/ocl/libOpenCL.so.1"
    fi
    local bytes
    bytes=$(stat -c %s "$TARBALL")
    echo "gpu-check: $TARBALL is $((bytes / 1024 / 1024)) MiB ($bytes bytes)"
    if (( bytes > MAX_TARBALL_BYTES )); then
        die "the tarball is over 60 MiB; it would not travel with the repository"
    fi
}

# Prints the first folder under the given globs that holds a file matching $1.
find_lib_dir() {
    local name="$1"
    shift
    local dir
    for dir in "$@"; do
        if compgen -G "$dir/$name" > /dev/null 2>&1; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

run_step() {
    # run_step NAME SECONDS COMMAND...: runs with a time limit, output to $OUT/NAME.txt, records the exit code.
    local name="$1" limit="$2"
    shift 2
    local start end rc
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    rc=$?
    end=$(date +%s)
    echo "$name: exit $rc in $((end - start)) s" >> "$OUT/summary.txt"
    echo "---- $name (exit $rc, $((end - start)) s): last lines"
    tail -n 25 "$OUT/$name.txt"
    return $rc
}

run() {
    [[ -f "$TARBALL" ]] || die "$TARBALL is missing; run 'scripts/gpu-check.sh pack' on a machine with the .NET SDK first"
    OUT="${OUT:-$GPU_DIR/out}"
    mkdir -p "$OUT"
    : > "$OUT/summary.txt"
    local app="$GPU_DIR/app"
    rm -rf "$app"
    mkdir -p "$app"
    tar -C "$app" -xJf "$TARBALL" || die "unpacking $TARBALL failed"
    local hal="$app/Hal.Cli"
    [[ -x "$hal" ]] || die "$hal is missing from the tarball"

    # Library folders: the CUDA toolkit, the loader cache, and NVIDIA's pip wheels (PyTorch installs).
    local sites=(/opt/*/.venv/lib/python3*/site-packages /opt/*/lib/python3*/site-packages /usr/local/lib/python3*/dist-packages /usr/lib/python3*/dist-packages "$HOME"/.local/lib/python3*/site-packages)
    local dirs=() d
    d=$(find_lib_dir 'libcuda.so.1' /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda*/compat /usr/lib/wsl/lib) && dirs+=("$d")
    d=$(find_lib_dir 'libcublas.so.*' /usr/local/cuda/lib64 /usr/local/cuda*/lib64 "${sites[@]/%//nvidia/cublas/lib}" "${sites[@]/%//nvidia/cu13/lib}") && dirs+=("$d")
    d=$(find_lib_dir 'libnccl.so.*' /usr/lib/x86_64-linux-gnu /usr/local/cuda*/lib64 "${sites[@]/%//nvidia/nccl/lib}" "${sites[@]/%//nvidia/cu13/lib}") && dirs+=("$d")
    local joined
    joined=$(IFS=:; echo "${dirs[*]:-}")
    export HAL_CUDA_LIBRARY_PATH="${HAL_CUDA_LIBRARY_PATH:+$HAL_CUDA_LIBRARY_PATH:}$joined"
    export LD_LIBRARY_PATH="${joined}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # A CUDA toolkit (for ILGPU's LibDevice math) where nvcc is installed.
    if [[ -z "${CUDA_PATH:-}" ]] && command -v nvcc > /dev/null 2>&1; then
        export CUDA_PATH="$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)"
    fi
    {
        echo "host: $(hostname)"
        echo "HAL_CUDA_LIBRARY_PATH=$HAL_CUDA_LIBRARY_PATH"
        echo "CUDA_PATH=${CUDA_PATH:-}"
        command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    } > "$OUT/environment.txt" 2>&1
    cat "$OUT/environment.txt"

    export TERM=dumb
    run_step devices 45 "$hal" devices
    timeout 60 "$hal" devices --json > "$OUT/devices.json" 2> /dev/null
    # The cuda entry's "available" and "reason" fields, read without jq (not installed everywhere).
    local cuda_entry available reason
    cuda_entry=$(tr -d '\n' < "$OUT/devices.json" | grep -o '"backend": *"cuda"[^}]*')
    available=$(grep -o '"available": *[a-z]*' <<< "$cuda_entry" | grep -o '[a-z]*$')
    reason=$(grep -o '"reason": *"[^"]*"' <<< "$cuda_entry" | sed 's/"reason": *"//; s/"$//')
    if [[ "$available" != "true" ]]; then
        echo "cuda: unavailable: ${reason:-not listed by hal devices}" | tee -a "$OUT/summary.txt"
        echo "gpu-check: stopping: the cuda backend is not available on this machine" >&2
        exit 2
    fi
    echo "cuda: available; $(grep -o '"name": *"[^"]*"' <<< "$cuda_entry" | head -1)" | tee -a "$OUT/summary.txt"
    # The quick subset first (every op × dtype once), then the whole catalogue, so a slow first run still leaves a
    # verdict. The GEMM bench names no peer: the default peer for a non-cpu backend is the CPU backend, far too slow
    # at 8192³ to share a short lease.
    run_step conformance-quick 90 "$hal" conformance --backend cuda --quick --json "$OUT/conformance-quick.json"
    run_step conformance 150 "$hal" conformance --backend cuda --json "$OUT/conformance.json"
    run_step bench-gemm 90 "$hal" bench gemm --backend cuda --sizes 4096,8192 --dtype bf16 --peer none --json
    run_step bench-gemm-f32 45 "$hal" bench gemm --backend cuda --sizes 4096 --dtype f32 --peer none --json
    run_step train 45 "$hal" train --backend cuda --steps 30
    opencl_on_gpu "$hal"
    echo "==== summary"
    cat "$OUT/summary.txt"
}

# The OpenCL backend on the GPU through NVIDIA's OpenCL driver, when the machine has it: the ICD loader carried in
# .gpu/ocl is used when the image has none, pointed at libnvidia-opencl.so.1 through a vendors folder.
opencl_on_gpu() {
    local hal="$1" nv
    nv=$(find_lib_dir 'libnvidia-opencl.so.1' /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/nvidia) || {
        echo "opencl: no libnvidia-opencl.so.1 on this machine; the OpenCL steps are not run" | tee -a "$OUT/summary.txt"
        return 0
    }
    local vendors="$GPU_DIR/ocl/vendors"
    mkdir -p "$vendors"
    echo "$nv/libnvidia-opencl.so.1" > "$vendors/nvidia.icd"
    export OCL_ICD_VENDORS="$vendors"
    if ! ldconfig -p 2> /dev/null | grep -q 'libOpenCL.so.1' && [[ -e "$GPU_DIR/ocl/libOpenCL.so.1" ]]; then
        export LD_LIBRARY_PATH="$GPU_DIR/ocl:$LD_LIBRARY_PATH"
    fi
    echo "opencl: NVIDIA driver at $nv/libnvidia-opencl.so.1" | tee -a "$OUT/summary.txt"
    run_step opencl-devices 30 "$hal" devices
    run_step opencl-conformance-quick 60 "$hal" conformance --backend opencl --quick --json "$OUT/opencl-conformance-quick.json"
    run_step opencl-bench-gemm 45 "$hal" bench gemm --backend opencl --sizes 2048,4096 --dtype f32 --peer none --json
}

case "${1:-}" in
    pack) pack ;;
    run) run ;;
    *) die "usage: scripts/gpu-check.sh pack|run" ;;
esac
