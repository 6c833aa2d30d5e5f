# A kill rule on an exec path (the shared agent's /vm/rules: execs under /tmp/vm/killbin/): the program is
# killed before it runs (its marker file never appears), the shell sees signal 9, and the journal has the
# exec stopped by the rule, the action and the alert.
. "$VM_LIB"
"$AUDITLOOP" rules check /vm/rules || fail "auditloop rules check rejected the suite's rules"
agent_shared
bin=/tmp/vm/killbin/forbidden-$$
printf '#!/bin/sh\ntouch %s\n' "$VM_WORK/ran" > "$bin"
chmod 755 "$bin"
"$bin"
rc=$?
[ "$rc" -eq 137 ] || fail "the shell saw status $rc, not 137 (SIGKILL)"
sleep 0.5
[ -e "$VM_WORK/ran" ] && fail "the program ran: $VM_WORK/ran exists"
# A sibling program outside the rule runs normally.
/bin/true || fail "/bin/true failed beside the rule"
export_journal
exec_line=$(expect_event "exec of the forbidden program" '"exec"' "\"filename\":\"$bin\"")
printf '%s\n' "$exec_line" | grep -qE '"killed_by_rule":0|"stopped_by_rule":"vm_kill_exec"' ||
    fail "the exec does not say a rule stopped it: $exec_line"
seq=$(json_num "$exec_line" seq)
action=$(expect_event "kill action" '"action"' '"rule":"vm_kill_exec"' "\"trigger_seq\":$seq")
printf '%s\n' "$action" | grep -qE '"action":"(kernel_kill|kill|deny)"' || fail "unexpected action: $action"
expect_event "alert for the exec" '"alert"' '"rule":"vm_kill_exec"' "\"trigger_seq\":$seq" > /dev/null
