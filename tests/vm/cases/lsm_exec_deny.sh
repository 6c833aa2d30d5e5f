# An exec deny rule (rules/deny.yaml: /tmp/vm/denybin/forbidden). With BPF LSM: execve fails with EPERM in
# bprm_check_security for every spelling (the path, a symlink, a hard link, /proc/self/root, `..`/`//`, a descriptor's /proc link), the program
# never runs, and the journal has the exec stopped by the rule in the kernel (`stopped_by: lsm`, the kernel's
# path as filename), the deny action and the alert. Without BPF LSM the same rules file loads, `rules
# check` says where it is enforced instead, and the exec guard refuses it (EPERM).
. "$VM_LIB"
check=$("$AUDITLOOP" rules check /vm/rules) || fail "auditloop rules check rejected the suite's rules"
line=$(printf '%s\n' "$check" | grep 'vm_deny_exec:')
if [ "$VM_LSM" = 1 ]; then
    printf '%s\n' "$check" | grep -q 'enforcement tier lsm' || fail "rules check: not the lsm tier: $check"
    printf '%s\n' "$line" | grep -q 'BPF LSM bprm_check_security' || fail "rules check: $line"
    stopped_by=lsm
else
    printf '%s\n' "$check" | grep -q 'enforcement tier tracepoint' || fail "rules check: not the tracepoint tier: $check"
    printf '%s\n' "$line" | grep -q 'exec guard' || fail "rules check: $line"
    stopped_by=exec_guard
fi
agent_shared
grep_all "$AGENT_DIR/out.jsonl" '"agent_start"' "\"tier\":\"$( [ "$VM_LSM" = 1 ] && echo lsm || echo tracepoint)\"" \
    > /dev/null || fail "agent_start does not name the expected tier: $(grep -m1 agent_start "$AGENT_DIR/out.jsonl")"
bin=/tmp/vm/denybin/forbidden
ln -s "$bin" "$VM_WORK/symlink"
ln "$bin" "$VM_WORK/hardlink" || fail "cannot hard-link the denied program"
for spelling in "$bin" "$VM_WORK/symlink" "$VM_WORK/hardlink" "/proc/self/root$bin" /tmp/vm/denybin/../denybin//forbidden; do
    err=$("$spelling" 2>&1)
    rc=$?
    [ "$rc" -eq 0 ] && fail "$spelling ran (status 0)"
    # EPERM reads "Operation not permitted"; EACCES ("Permission denied") would be another refusal.
    printf '%s\n' "$err" | grep -q 'not permitted' || fail "$spelling: not EPERM (status $rc): $err"
    [ -e /tmp/vm/denied-ran ] && fail "the program ran through $spelling: its marker exists"
done
# Through a descriptor: the file opened read-only, executed by its /proc link.
exec 3< "$bin"
err=$(/proc/self/fd/3 2>&1) && fail "the program ran through /proc/self/fd/3"
printf '%s\n' "$err" | grep -q 'not permitted' || fail "/proc/self/fd/3: not EPERM: $err"
exec 3<&-
[ -e /tmp/vm/denied-ran ] && fail "the program ran through a descriptor: its marker exists"
/bin/true || fail "/bin/true failed beside the rule"
export_journal
exec_line=$(expect_event "the refused exec" '"exec"' '"stopped_by_rule":"vm_deny_exec"' "\"stopped_by\":\"$stopped_by\"")
printf '%s\n' "$exec_line" | grep -q '"ret":-1,' || fail "the exec did not fail with -EPERM: $exec_line"
# Kernel and userspace agree on the file: the exec names the real path whatever the spelling.
printf '%s\n' "$exec_line" | grep -qE "\"filename\":\"($bin|$VM_WORK/hardlink)\"" ||
    fail "the exec names another file: $exec_line"
n=$(grep_all "$EXPORT" '"exec"' '"stopped_by_rule":"vm_deny_exec"' | wc -l)
[ "$n" -ge 6 ] || fail "only $n of 6 refused execs journaled as stopped by the rule"
seq=$(json_num "$exec_line" seq)
action=$(expect_event "deny action" '"action"' '"rule":"vm_deny_exec"' "\"trigger_seq\":$seq")
printf '%s\n' "$action" | grep -q '"action":"deny"' || fail "unexpected action: $action"
if [ "$VM_LSM" = 1 ]; then
    printf '%s\n' "$action" | grep -q 'BPF LSM' || fail "the action does not say BPF LSM refused it: $action"
fi
expect_event "alert for the exec" '"alert"' '"rule":"vm_deny_exec"' "\"trigger_seq\":$seq" > /dev/null
