# Shared helpers for the VM cases (busybox sh). A case sources "$VM_LIB" and calls these; every helper
# that checks something calls `fail` (which exits the case) when the check does not hold.
#
# Environment: VM_KERNEL (uname -r), VM_LSM (1 when the kernel was booted with the BPF LSM), AUDITLOOP
# (the agent binary), VM_WORK (a fresh, empty directory for this case; the current directory).

AGENT_DIR="$VM_WORK/agent"
STATE="$AGENT_DIR/state"
JOURNAL="$STATE/journal"
EXPORT="$VM_WORK/journal.jsonl"
# The agent cases share (started by the first case that asks for it, stopped by the runner at the end):
# loading and attaching the programs takes 40-60 s under TCG, so one agent per case would not fit.
SHARED=/tmp/vm/shared
SHARED_CONFIG="watch:
  paths: [/tmp/vm/watch]"
SHARED_RULES=/vm/rules

# fail REASON: print REASON (the host shows the last `FAIL:` line as the case's reason) and exit 1.
fail() {
    echo "FAIL: $*"
    exit 1
}

# note TEXT: a line of case output (shown by the host only when the case fails).
note() {
    echo "note: $*"
}

# agent_start [CONFIG_YAML [RULES_PATH]]: starts `auditloop run --output json` with CONFIG_YAML as its
# config file (text; empty for defaults), RULES_PATH as its rules, a state directory of its own, and waits
# until it prints `agent_start` (every program attached: it is capturing). Its stdout is
# $AGENT_DIR/out.jsonl, stderr $AGENT_DIR/err.log, pid in $VM_WORK/agent.pid.
agent_start() {
    mkdir -p "$AGENT_DIR"
    printf '%s\n' "${1:-}" > "$AGENT_DIR/config.yaml"
    set -- "$AUDITLOOP" run --output json --config "$AGENT_DIR/config.yaml" --state-dir "$STATE" \
        ${2:+--rules "$2"}
    t0=$(uptime_s)
    "$@" < /dev/null > "$AGENT_DIR/out.jsonl" 2> "$AGENT_DIR/err.log" &
    AGENT_PID=$!
    echo "$AGENT_PID" > "$VM_WORK/agent.pid"
    i=0
    while ! grep -q '"agent_start"' "$AGENT_DIR/out.jsonl" 2> /dev/null; do
        # (Not `kill -0`: the agent journals every signal aimed at it as tampering.)
        if [ ! -d "/proc/$AGENT_PID" ]; then
            wait "$AGENT_PID"
            rc=$?
            tail -n 30 "$AGENT_DIR/err.log"
            fail "agent exited with status $rc before agent_start: $(grep -i -m1 'error' "$AGENT_DIR/err.log")"
        fi
        i=$((i + 1))
        [ "$i" -gt 1200 ] && { tail -n 30 "$AGENT_DIR/err.log"; fail "no agent_start within 120 s"; }
        sleep 0.1
    done
    note "agent $AGENT_PID capturing after $(elapsed_since "$t0") s"
}

# agent_shared: uses the suite's shared agent (config $SHARED_CONFIG: /tmp/vm/watch is watched; rules
# /vm/rules: execs under /tmp/vm/killbin/ are killed), starting it if it is not running yet. Sets the same
# variables as agent_start; do not agent_stop it.
agent_shared() {
    VM_WORK_OWN=$VM_WORK
    AGENT_DIR="$SHARED/agent"
    STATE="$AGENT_DIR/state"
    JOURNAL="$STATE/journal"
    if [ -f "$SHARED/agent.pid" ] && [ -d "/proc/$(cat "$SHARED/agent.pid")" ]; then
        AGENT_PID=$(cat "$SHARED/agent.pid")
        return
    fi
    [ -f "$SHARED/failed" ] && fail "the shared agent did not start: $(cat "$SHARED/failed")"
    mkdir -p "$SHARED"
    VM_WORK=$SHARED
    (agent_start "$SHARED_CONFIG" "$SHARED_RULES") > "$SHARED/start.log" 2>&1 || {
        grep '^FAIL: ' "$SHARED/start.log" | cut -c7- > "$SHARED/failed"
        cat "$SHARED/start.log"
        VM_WORK=$VM_WORK_OWN
        fail "the shared agent did not start: $(cat "$SHARED/failed")"
    }
    VM_WORK=$VM_WORK_OWN
    cat "$SHARED/start.log"
    AGENT_PID=$(cat "$SHARED/agent.pid")
}

# agent_stop: SIGTERM, wait for the exit; fails unless the agent exits 0.
agent_stop() {
    kill -TERM "$AGENT_PID"
    wait "$AGENT_PID"
    rc=$?
    rm -f "$VM_WORK/agent.pid"
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$AGENT_DIR/err.log"
        fail "agent exited with status $rc after SIGTERM"
    fi
}

# wait_out PATTERN...: waits (up to 30 s) until one line of the agent's stdout holds every fixed string.
wait_out() {
    i=0
    until grep_all "$AGENT_DIR/out.jsonl" "$@" > /dev/null; do
        i=$((i + 1))
        [ "$i" -gt 300 ] && fail "no event on the agent's stdout with: $*"
        sleep 0.1
    done
}

# export_journal: writes the journal's events as JSON lines to $EXPORT (of a running agent too: what it
# has written so far).
export_journal() {
    "$AUDITLOOP" export "$JOURNAL" --format jsonl > "$EXPORT" || fail "auditloop export failed"
    note "journal: $(wc -l < "$EXPORT") events"
}

# grep_all FILE PATTERN...: prints the lines of FILE holding every fixed string.
grep_all() {
    file=$1
    shift
    out=$(cat "$file")
    for p in "$@"; do
        out=$(printf '%s\n' "$out" | grep -F -- "$p")
    done
    [ -n "$out" ] && printf '%s\n' "$out"
}

# expect_event WHAT PATTERN...: the exported journal has a line holding every fixed string; prints it.
expect_event() {
    what=$1
    shift
    i=0
    # A running agent may not have written the event yet: export again for up to 15 s.
    until line=$(grep_all "$EXPORT" "$@"); do
        i=$((i + 1))
        if [ "$i" -gt 30 ] || [ ! -d "/proc/${AGENT_PID:-0}" ]; then
            grep -F -m3 -- "$1" "$EXPORT"
            fail "journal has no $what (a line with: $*)"
        fi
        sleep 0.5
        "$AUDITLOOP" export "$JOURNAL" --format jsonl > "$EXPORT" 2> /dev/null
    done
    printf '%s\n' "$line" | head -n 1
}

# json_num LINE KEY: the first number after "KEY": in LINE.
json_num() {
    printf '%s\n' "$1" | grep -o "\"$2\":-\{0,1\}[0-9][0-9]*" | head -n 1 | cut -d: -f2
}

# uptime_s / elapsed_since T0: seconds since boot, and since T0 (one decimal).
uptime_s() {
    cut -d' ' -f1 /proc/uptime
}
elapsed_since() {
    awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'
}
