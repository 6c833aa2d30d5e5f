# stop_processes BINARY: sends SIGTERM to every process running BINARY (its /proc/PID/exe), waits up to 30 s
# for them to exit cleanly, then kills what is left. Used when systemd is not PID 1 (a container, a chroot,
# a --root install), where no service manager knows the processes.
stop_processes() {
	bin="$1"
	pids=$(running_pids "$bin")
	[ -n "$pids" ] || return 0
	echo "Stopping $bin (pid $(echo $pids)) ..."
	kill -TERM $pids 2>/dev/null || true
	waited=0
	while [ -n "$(running_pids "$bin")" ]; do
		if [ "$waited" -ge 30 ]; then
			echo "warning: $bin did not exit within 30 s of SIGTERM; sending SIGKILL" >&2
			kill -KILL $(running_pids "$bin") 2>/dev/null || true
			return 0
		fi
		sleep 1
		waited=$((waited + 1))
	done
}

# running_pids BINARY: the pids whose /proc/PID/exe is BINARY (or BINARY after it was deleted).
running_pids() {
	for dir in /proc/[0-9]*; do
		exe=$(readlink "$dir/exe" 2>/dev/null) || continue
		if [ "$exe" = "$1" ] || [ "$exe" = "$1 (deleted)" ]; then
			echo "${dir#/proc/}"
		fi
	done
}
