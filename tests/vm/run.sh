#!/bin/sh
# The VM suite runner: runs every /vm/cases/NAME.sh in name order, one line per case on the console:
#   VMTEST-BEGIN <n>, then per case VMTEST-TIME <name> <secs> and VMTEST <name> PASS | VMTEST <name> FAIL
#   <reason>, then VMTEST-END.
# A case's output goes to the console between `VMTEST-OUT <name>` lines when it fails.
VM_LSM=$(sed -n 's/.*auditloop\.lsm=\([01]\).*/\1/p' /proc/cmdline)
VM_CASE_TIMEOUT=$(sed -n 's/.*auditloop\.case_timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
export VM_LSM VM_KERNEL="$(uname -r)" AUDITLOOP=/bin/auditloop VM_LIB=/vm/lib.sh
cases=""
for f in /vm/cases/*.sh; do
    name=$(basename "$f" .sh)
    cases="$cases $name"
done
n=$(echo $cases | wc -w)
# Directories the shared agent's config and rules name (lib.sh, agent_shared).
mkdir -p /tmp/vm/watch /tmp/vm/killbin /tmp/vm/denybin /tmp/vm/protected/sub
printf 'port 22\nlog info\n' > /tmp/vm/watch/app.conf
# The deny rules' files (rules/deny.yaml) exist before the agent starts: it protects them by identity too.
printf '#!/bin/sh\ntouch /tmp/vm/denied-ran\n' > /tmp/vm/denybin/forbidden
chmod 755 /tmp/vm/denybin/forbidden
printf 'original\n' > /tmp/vm/protected/app.conf
printf 'nested\n' > /tmp/vm/protected/sub/deep.conf
echo "VMTEST-INFO kernel=$VM_KERNEL lsm_expected=$VM_LSM lsm=$(cat /sys/kernel/security/lsm 2>/dev/null) cpus=$(nproc)"
echo "VMTEST-BEGIN $n"
for name in $cases; do
    VM_WORK=/tmp/vmtest/$name
    mkdir -p "$VM_WORK"
    export VM_WORK
    started=$(cut -d' ' -f1 /proc/uptime)
    (cd "$VM_WORK" && timeout "${VM_CASE_TIMEOUT:-240}" sh /vm/cases/$name.sh) > "$VM_WORK.out" 2>&1
    rc=$?
    took=$(awk -v a="$started" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    echo "VMTEST-TIME $name $took"
    if [ "$rc" -eq 0 ]; then
        echo "VMTEST $name PASS"
    else
        echo "VMTEST-OUT $name"
        tail -n 40 "$VM_WORK.out"
        echo "VMTEST-OUT $name"
        reason=$(grep '^FAIL: ' "$VM_WORK.out" | tail -n 1 | cut -c7-)
        [ "$rc" -eq 143 ] && reason="timed out after ${VM_CASE_TIMEOUT:-240}s${reason:+: $reason}"
        echo "VMTEST $name FAIL ${reason:-exit status $rc}"
    fi
    # A case that failed may leave its agent running: stop it before the next case starts its own.
    [ -f "$VM_WORK/agent.pid" ] && kill -9 "$(cat "$VM_WORK/agent.pid")" 2>/dev/null
done
# The shared agent (lib.sh, agent_shared) must stop cleanly too: within 120 s of SIGTERM, status line
# `stopped` in its log. Otherwise the runner reports it as a failed case of its own, `shared_agent_stop`.
if [ -f /tmp/vm/shared/agent.pid ]; then
    pid=$(cat /tmp/vm/shared/agent.pid)
    started=$(cut -d' ' -f1 /proc/uptime)
    kill -TERM "$pid"
    i=0
    while [ -d "/proc/$pid" ] && [ "$i" -lt 600 ]; do
        i=$((i + 1))
        sleep 0.2
    done
    took=$(awk -v a="$started" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    echo "VMTEST-INFO shared agent stop took ${took}s"
    if [ -d "/proc/$pid" ]; then
        echo "VMTEST-OUT shared_agent_stop"
        grep -v tamper /tmp/vm/shared/agent/err.log | tail -n 20
        grep VmRSS "/proc/$pid/status"
        cat "/proc/$pid/stack" 2> /dev/null | head -n 20
        echo "VMTEST-OUT shared_agent_stop"
        kill -9 "$pid"
        echo "VMTEST shared_agent_stop FAIL the shared agent did not exit within 120 s of SIGTERM"
    fi
fi
echo "VMTEST-END"
