//! Network events on loopback: bind, listen, connect and accept with addresses and ports.

use std::net::{TcpListener, TcpStream};

use harness::Agent;

#[test]
fn bind_listen_connect_accept_on_loopback() {
    let mut agent = Agent::start(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let me = u64::from(std::process::id());
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_server_side, peer) = listener.accept().expect("accept");

    let bind = agent.wait_for("net", |e, n| {
        e["process"]["pid"] == me && n["op"] == "bind" && n["port"] == 0
    });
    assert_eq!(bind["event"]["net"]["address"], "127.0.0.1", "{bind}");
    assert_eq!(bind["event"]["net"]["family"], "inet", "{bind}");
    agent.wait_for("net", |e, n| {
        e["process"]["pid"] == me && n["op"] == "listen" && n["success"] == true
    });
    let connect = agent.wait_for("net", |_, n| n["op"] == "connect" && n["port"] == port);
    assert_eq!(connect["event"]["net"]["address"], "127.0.0.1", "{connect}");
    assert_eq!(connect["event"]["net"]["success"], true, "{connect}");
    let accept = agent.wait_for("net", |_, n| {
        n["op"] == "accept" && n["port"] == peer.port()
    });
    assert_eq!(accept["event"]["net"]["address"], "127.0.0.1", "{accept}");
    assert!(
        accept["event"]["net"]["ret"].as_i64().expect("new fd") >= 0,
        "{accept}"
    );
    drop(client);
}

/// The `net` event of this process for `op` on which `pred` holds.
fn net_event(
    agent: &mut Agent,
    op: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let me = u64::from(std::process::id());
    agent.wait_for("net", |e, n| {
        e["process"]["pid"] == me && n["op"] == op && pred(n)
    })
}

/// Asserts the local and remote ends of a `net` body.
fn assert_ends(ev: &serde_json::Value, local: (&str, u16), remote: (&str, u16)) {
    let n = &ev["event"]["net"];
    assert_eq!(n["protocol"], "tcp", "{ev}");
    assert_eq!(
        (n["local_address"].as_str(), n["local_port"].as_u64()),
        (Some(local.0), Some(u64::from(local.1))),
        "local end: {ev}"
    );
    assert_eq!(
        (n["remote_address"].as_str(), n["remote_port"].as_u64()),
        (Some(remote.0), Some(u64::from(remote.1))),
        "remote end: {ev}"
    );
}

#[test]
fn listen_accept_and_connect_carry_both_ends() {
    let mut agent = Agent::start(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let ephemeral = client.local_addr().expect("client addr").port();
    let (_server_side, _) = listener.accept().expect("accept");

    // bind asked for port 0: the kernel picks the port then, and listen names it.
    let listen = net_event(&mut agent, "listen", |n| n["local_port"] == port);
    assert_eq!(listen["event"]["net"]["protocol"], "tcp", "{listen}");
    assert_eq!(listen["event"]["net"]["family"], "inet", "{listen}");
    assert_eq!(listen["event"]["net"]["address"], "127.0.0.1", "{listen}");
    assert_eq!(listen["event"]["net"]["port"], port, "{listen}");
    assert_eq!(listen["event"]["net"]["remote_address"], "", "{listen}");
    let connect = net_event(&mut agent, "connect", |n| n["remote_port"] == port);
    assert_ends(&connect, ("127.0.0.1", ephemeral), ("127.0.0.1", port));
    let accept = net_event(&mut agent, "accept", |n| n["remote_port"] == ephemeral);
    assert_ends(&accept, ("127.0.0.1", port), ("127.0.0.1", ephemeral));
    drop(client);
}

#[test]
fn an_accept_on_a_wildcard_listener_names_the_address_dialled() {
    let mut agent = Agent::start(&[]);
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let ephemeral = client.local_addr().expect("client addr").port();
    let (_server_side, _) = listener.accept().expect("accept");
    let listen = net_event(&mut agent, "listen", |n| n["local_port"] == port);
    assert_eq!(
        listen["event"]["net"]["local_address"], "0.0.0.0",
        "{listen}"
    );
    let accept = net_event(&mut agent, "accept", |n| n["remote_port"] == ephemeral);
    assert_ends(&accept, ("127.0.0.1", port), ("127.0.0.1", ephemeral));
}

#[test]
fn udp_connect_names_its_protocol_and_local_port() {
    let mut agent = Agent::start(&[]);
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
    let peer_port = peer.local_addr().expect("addr").port();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    let local_port = socket.local_addr().expect("addr").port();
    socket.connect(("127.0.0.1", peer_port)).expect("connect");
    let connect = net_event(&mut agent, "connect", |n| n["remote_port"] == peer_port);
    let n = &connect["event"]["net"];
    assert_eq!(n["protocol"], "udp", "{connect}");
    assert_eq!(
        (n["local_address"].as_str(), n["local_port"].as_u64()),
        (Some("127.0.0.1"), Some(u64::from(local_port))),
        "{connect}"
    );
}

#[test]
fn a_unix_socket_carries_its_path() {
    let dir = harness::temp_dir("unixsock");
    let path = dir.join("server.sock");
    let path_text = path.to_str().expect("utf-8").to_owned();
    let mut agent = Agent::start(&[]);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // Connect through a relative path, from the directory: the event names the canonical path.
    let child = connect_relative(&dir, "server.sock");
    let direct = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let (_server_side, _) = listener.accept().expect("accept");

    let bind = net_event(&mut agent, "bind", |n| n["path"] == path_text.as_str());
    assert_eq!(bind["event"]["net"]["family"], "unix", "{bind}");
    assert_eq!(bind["event"]["net"]["protocol"], "unix", "{bind}");
    assert_eq!(
        bind["event"]["net"]["local_address"],
        path_text.as_str(),
        "{bind}"
    );
    let listen = net_event(&mut agent, "listen", |n| n["path"] == path_text.as_str());
    assert_eq!(
        listen["event"]["net"]["local_address"],
        path_text.as_str(),
        "{listen}"
    );
    let connect = net_event(&mut agent, "connect", |n| n["path"] == path_text.as_str());
    assert_eq!(
        connect["event"]["net"]["remote_address"],
        path_text.as_str(),
        "{connect}"
    );
    assert_eq!(connect["event"]["net"]["protocol"], "unix", "{connect}");
    let accept = net_event(&mut agent, "accept", |n| n["path"] == path_text.as_str());
    assert_eq!(
        accept["event"]["net"]["local_address"],
        path_text.as_str(),
        "{accept}"
    );
    assert_eq!(accept["event"]["net"]["protocol"], "unix", "{accept}");
    let rel = agent.wait_for("net", |e, n| {
        e["process"]["pid"] == child && n["op"] == "connect" && n["remote_address"] == "server.sock"
    });
    assert_eq!(
        rel["event"]["net"]["path"],
        path_text.as_str(),
        "canonical: {rel}"
    );
    assert_eq!(rel["event"]["net"]["success"], true, "{rel}");
    drop(direct);
    harness::remove_tree(&dir);
}

/// Forks a child that changes into `dir`, connects a unix stream socket to the relative `name` and exits;
/// returns its pid once it has exited successfully.
fn connect_relative(dir: &std::path::Path, name: &str) -> u32 {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the child only makes async-signal-safe calls (chdir, socket, connect, _exit) on memory
    // prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let ok = libc::chdir(dir.as_ptr()) == 0 && {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                fd >= 0
                    && libc::connect(
                        fd,
                        (&raw const addr).cast(),
                        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                    ) == 0
            };
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "relative connect failed: {status}"
    );
    u32::try_from(pid).expect("pid")
}

#[test]
fn a_non_blocking_connect_carries_the_port_the_kernel_picked() {
    use std::os::fd::AsRawFd;
    let mut agent = Agent::start(&[]);
    // A listener whose accept queue holds one connection: a second connect stays in SYN_SENT (its SYN is
    // dropped), so its connect returns EINPROGRESS before the kernel reports the local end.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // SAFETY: changing the backlog of our own listening socket.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let _queued = TcpStream::connect(("127.0.0.1", port)).expect("first connect");
    // SAFETY: plain socket calls on a descriptor this test owns; the address is a valid sockaddr_in.
    let (fd, local_port) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ret = libc::connect(fd, (&raw const addr).cast(), len);
        let errno = std::io::Error::last_os_error().raw_os_error();
        assert_eq!(
            (ret, errno),
            (-1, Some(libc::EINPROGRESS)),
            "connect under way"
        );
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        let mut local_len = len;
        assert_eq!(
            libc::getsockname(fd, (&raw mut local).cast(), &mut local_len),
            0
        );
        (fd, u16::from_be(local.sin_port))
    };
    // Closing the socket ends the attempt (SYN_SENT → CLOSE), with the port the kernel had picked.
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    let connect = net_event(&mut agent, "connect", |n| {
        n["ret"] == -115 && n["remote_port"] == port
    });
    let n = &connect["event"]["net"];
    assert_eq!(n["success"], true, "{connect}");
    assert_eq!(n["protocol"], "tcp", "{connect}");
    assert_eq!(n["local_address"], "127.0.0.1", "{connect}");
    assert_eq!(n["local_port"], local_port, "{connect}");
}

#[test]
fn ipv6_and_dual_stack_connections_carry_both_ends() {
    let mut agent = Agent::start(&[]);
    let listener = TcpListener::bind("[::1]:0").expect("bind ::1");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("::1", port)).expect("connect ::1");
    let ephemeral = client.local_addr().expect("client addr").port();
    let (_server_side, _) = listener.accept().expect("accept");
    let connect = net_event(&mut agent, "connect", |n| n["remote_port"] == port);
    assert_eq!(connect["event"]["net"]["family"], "inet6", "{connect}");
    assert_ends(&connect, ("::1", ephemeral), ("::1", port));
    let accept = net_event(&mut agent, "accept", |n| n["remote_port"] == ephemeral);
    assert_ends(&accept, ("::1", port), ("::1", ephemeral));

    // A dual-stack listener accepting an IPv4 client sees it as an IPv4-mapped address; the client's own
    // connect names plain IPv4.
    let dual = TcpListener::bind("[::]:0").expect("bind ::");
    let dual_port = dual.local_addr().expect("addr").port();
    let v4 = TcpStream::connect(("127.0.0.1", dual_port)).expect("connect v4 to dual stack");
    let v4_port = v4.local_addr().expect("client addr").port();
    let (_v4_side, peer) = dual.accept().expect("accept");
    let connect = net_event(&mut agent, "connect", |n| n["remote_port"] == dual_port);
    assert_ends(&connect, ("127.0.0.1", v4_port), ("127.0.0.1", dual_port));
    let accept = net_event(&mut agent, "accept", |n| n["remote_port"] == v4_port);
    let mapped = peer.ip().to_string();
    assert_eq!(
        mapped, "::ffff:127.0.0.1",
        "what the kernel hands the listener"
    );
    assert_ends(&accept, ("::ffff:127.0.0.1", dual_port), (&mapped, v4_port));
    drop((client, v4));
}
