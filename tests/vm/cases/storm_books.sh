# A few seconds of open/write/close through a 4 KiB ring buffer: every write-open the storm made is either
# journaled or counted in a `loss` event (U = G - J - L <= 0, J <= G), and the stop event's kernel_lost
# covers the losses.
. "$VM_LIB"
dir=/dev/shm/storm
mkdir -p "$dir"
agent_start "capture:
  ring_buffer_bytes: 4096"
end=$(( $(cut -d. -f1 /proc/uptime) + 4 ))
g=0
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    for i in 0 1 2 3 4 5 6 7 8 9; do
        echo x > "$dir/f$i"
    done
    g=$((g + 10))
done
note "storm: $g write-opens"
sleep 2
agent_stop
export_journal
j=$(grep -F '"op":"open"' "$EXPORT" | grep -cF "\"path\":\"$dir/f")
l=0
for n in $(grep -F '"loss"' "$EXPORT" | grep -F '"stage":"kernel_ring_buffer"' | grep -F '"record":"syscall:open"' |
    grep -o '"count":[0-9]*' | cut -d: -f2); do
    l=$((l + n))
done
stop=$(grep -F '"agent_stop"' "$EXPORT" | tail -n 1)
kernel_lost=$(json_num "$stop" kernel_lost)
note "G=$g J=$j L=$l kernel_lost=$kernel_lost"
[ "$j" -le "$g" ] || fail "more opens journaled ($j) than performed ($g)"
[ $((j + l)) -ge "$g" ] || fail "unaccounted loss: G=$g J=$j L=$l, U=$((g - j - l))"
[ -n "$kernel_lost" ] || fail "no kernel_lost in agent_stop: $stop"
[ "$kernel_lost" -ge "$l" ] || fail "agent_stop kernel_lost $kernel_lost < counted losses $l"
