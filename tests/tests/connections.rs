//! What one connection can make the server hold is bounded: headers that
//! trickle in are cut off, oversized headers are refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use secretd_tests::{Server, TestDatabase};

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let database = TestDatabase::sqlite();
    let server = Server::dev(&database.url, "root");
    let mut stream = TcpStream::connect(address(&server)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(25),
        "the connection stayed open {waited:?}"
    );
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn oversized_headers_are_refused() {
    let database = TestDatabase::sqlite();
    let server = Server::dev(&database.url, "root");
    let mut stream = TcpStream::connect(address(&server)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let big = "a".repeat(100 * 1024);
    let request = format!("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
}
