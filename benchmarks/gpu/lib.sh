# Shared by benchmarks/gpu/sweep.sh and homework.sh (sourced, not run). The lent GPU machine has no internet and
# the device tool ends a call after 10 minutes, while a plan takes up to 11: so a plan runs in the background
# (setsid: it outlives the call), the first call waits for it as long as it may, and a second call (`--collect`,
# made at once: the machine stays warm for 30 s only) waits for the rest and brings the results back in $OUT.

WAIT=${WAIT:-560}   # seconds a call waits for the plan (the tool's limit is 600; copying needs the rest)

gpu_setup() {
    # animegen from the checkout, offline: its one dependency the machine lacks (animeface) comes as a wheel in
    # .gpu-data/wheels (benchmarks/gpu/prepare.sh); pip checks that every other dependency is there
    mkdir -p "$WORK"
    if python3 -m pip install -q --no-index --find-links .gpu-data/wheels --no-build-isolation -e . \
            > "$WORK/pip.log" 2>&1; then
        echo "animegen installed offline: $(python3 -m animegen --version), animeface from .gpu-data/wheels"
    else
        echo "pip could not install the checkout offline (the end of $WORK/pip.log follows); using PYTHONPATH"
        tail -5 "$WORK/pip.log"
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .gpu-data/wheels/*.whl
        export PYTHONPATH="$PWD/src:$WORK/site"
    fi
    export PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, 'capability', torch.cuda.get_device_capability())"
}

copy_out() {
    # what comes back (the tool takes 8 files, 16 MiB each): the summary, the details, the log, a tarball of
    # every run's log.jsonl, config, output and face grid, and the hand-in archives named in $HANDINS
    [ -n "${OUT:-}" ] || return 0
    cp "$WORK.log" "$OUT/session.log" 2>/dev/null
    cp "$RESULTS/summary.json" "$RESULTS/details.json" "$OUT/" 2>/dev/null
    (cd "$WORK" && tar -czf "$OUT/results.tgz" --ignore-failed-read ./*.log runs/*/log.jsonl runs/*/config.json \
        faces/*.json faces/*-grid.jpg 2>/dev/null)
    for name in ${HANDINS:-}; do cp "$WORK/faces/$name.tgz" "$OUT/$name.tgz" 2>/dev/null; done
    return 0
}

wait_for_plan() {
    # up to $WAIT seconds for the plan's exit status; then copy out what there is
    local waited=0
    while [ ! -f "$WORK.rc" ] && [ "$waited" -lt "$WAIT" ]; do sleep 5; waited=$((waited + 5)); done
    copy_out
    if [ -f "$WORK.rc" ]; then
        echo "the plan ended with status $(cat "$WORK.rc") after $(($(date +%s) - $(cat "$WORK.start"))) s"
        tail -20 "$WORK.log"
        return "$(cat "$WORK.rc")"
    fi
    echo "still running after $(($(date +%s) - $(cat "$WORK.start"))) s (the end of its log follows): call again" \
         "with --collect now"
    tail -5 "$WORK.log"
}

run_plan() {
    # usage: run_plan SCRIPT.py [--dry | --collect] [ARGS...]: --dry runs it here, in the foreground, on the CPU
    local script=$1
    shift
    case "${1:-}" in
        --dry) shift; rm -rf "$WORK" && mkdir -p "$WORK"
               python3 "$script" --dry --work "$WORK" --results "$RESULTS" "$@" 2>&1 | tee "$WORK.log"
               local rc=${PIPESTATUS[0]}; copy_out; return "$rc" ;;
        --collect) wait_for_plan; return ;;
    esac
    [ ! -f "$WORK.start" ] || [ -f "$WORK.rc" ] || { echo "a plan is already running: --collect"; exit 2; }
    rm -rf "$WORK" "$WORK.rc" "$WORK.log" && mkdir -p "$WORK"
    date +%s > "$WORK.start"
    gpu_setup > "$WORK.log" 2>&1
    local extra=""
    [ $# -eq 0 ] || extra=$(printf ' %q' "$@")
    setsid nohup bash -c "python3 '$script' --work '$WORK' --results '$RESULTS'$extra >> '$WORK.log' 2>&1; \
        echo \$? > '$WORK.rc'" < /dev/null > /dev/null 2>&1 &
    wait_for_plan
}
