# A kill rule on an exec path: the program is killed before it runs (its marker file never appears), the
# shell sees signal 9, and the journal has the exec stopped by the rule, the action and the alert.
. "$VM_LIB"
dir="$VM_WORK/bin"
mkdir -p "$dir"
printf '#!/bin/sh\ntouch %s\n' "$VM_WORK/ran" > "$dir/forbidden"
chmod 755 "$dir/forbidden"
mkdir -p "$VM_WORK/rules"
cat > "$VM_WORK/rules/kill.yaml" << RULES
- rule: vm_kill_exec
  desc: the VM suite's forbidden program
  condition: evt.kind = exec and exec.filename startswith $dir/
  output: "killed %exec.filename"
  severity: critical
  actions: [alert, kill]
RULES
"$AUDITLOOP" rules check "$VM_WORK/rules" || fail "auditloop rules check rejected the rule"
agent_start "" "$VM_WORK/rules"
"$dir/forbidden"
rc=$?
[ "$rc" -eq 137 ] || fail "the shell saw status $rc, not 137 (SIGKILL)"
sleep 0.5
[ -e "$VM_WORK/ran" ] && fail "the program ran: $VM_WORK/ran exists"
wait_out '"alert"' vm_kill_exec
agent_stop
export_journal
exec_line=$(expect_event "exec of the forbidden program" '"exec"' "\"filename\":\"$dir/forbidden\"")
printf '%s\n' "$exec_line" | grep -qE '"killed_by_rule":0|"stopped_by_rule":"vm_kill_exec"' ||
    fail "the exec does not say a rule stopped it: $exec_line"
seq=$(json_num "$exec_line" seq)
action=$(expect_event "kill action" '"action"' '"rule":"vm_kill_exec"')
printf '%s\n' "$action" | grep -qE '"action":"(kernel_kill|kill|deny)"' || fail "unexpected action: $action"
expect_event "alert for the exec" '"alert"' '"rule":"vm_kill_exec"' "\"trigger_seq\":$seq" > /dev/null
