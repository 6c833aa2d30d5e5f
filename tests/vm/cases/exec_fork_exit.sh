# A shell spawns a program with distinctive argv: the journal has the fork, the exec with that argv and its
# result, and the exit with its status.
. "$VM_LIB"
agent_shared
marker="vm-exec-$$-$(uptime_s)"
# A child of this shell that execs a program with the marker in its argv and exits 7.
sh -c "exec /bin/busybox sh -c 'exit 7' $marker" &
child=$!
wait "$child"
rc=$?
[ "$rc" -eq 7 ] || fail "the child exited $rc, not 7"
wait_out '"exit"' "\"pid\":$child"
export_journal
exec_line=$(expect_event "exec of the marked argv" '"exec"' "\"$marker\"" "\"pid\":$child")
printf '%s\n' "$exec_line" | grep -q '"success":true' || fail "exec not successful: $exec_line"
printf '%s\n' "$exec_line" | grep -q '"argv":\["/bin/busybox","sh","-c","exit 7","'"$marker"'"\]' ||
    fail "exec argv differs: $exec_line"
expect_event "fork of the child" '"fork"' "\"child_pid\":$child" > /dev/null
exit_line=$(expect_event "exit of the child" '"exit"' "\"pid\":$child")
printf '%s\n' "$exit_line" | grep -q '"code":7' || fail "exit code is not 7: $exit_line"
