# A loopback TCP listener and a client: listen, connect and accept are journaled with the port.
. "$VM_LIB"
port=47011
agent_shared
nc -l -p "$port" > "$VM_WORK/received" &
server=$!
i=0
until netstat -ltn 2> /dev/null | grep -q ":$port "; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && fail "nc never listened on $port"
    sleep 0.1
done
echo "hello-vm" | nc 127.0.0.1 "$port" &
client=$!
wait "$server"
kill "$client" 2> /dev/null
wait "$client" 2> /dev/null
grep -q hello-vm "$VM_WORK/received" || fail "the server did not receive the client's line"
wait_out '"net"' '"accept' "$port"
export_journal
expect_event "listen on $port" '"net"' '"op":"listen"' "\"pid\":$server" > /dev/null
expect_event "connect to 127.0.0.1:$port" '"net"' '"op":"connect"' '"address":"127.0.0.1"' "\"port\":$port" > /dev/null
expect_event "accept on $port" '"net"' '"op":"accept' "\"pid\":$server" "$port" > /dev/null
