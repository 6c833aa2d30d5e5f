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
