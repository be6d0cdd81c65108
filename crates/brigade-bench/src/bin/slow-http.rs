//! The local server of benchmark C4: answers every HTTP/1.1 GET after a fixed
//! delay (50 ms by default) with a 2-byte body, keeping connections alive.
//!
//! `slow-http PORT [DELAY_MS]`; prints `ready` on stdout once listening.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let delay = Duration::from_millis(args.next().and_then(|d| d.parse().ok()).unwrap_or(50));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("ready {}", listener.local_addr().expect("an address").port());
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: up to the blank line (GETs have no body).
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let close = String::from_utf8_lossy(&buf[..end])
                        .to_ascii_lowercase()
                        .contains("connection: close");
                    buf.drain(..end);
                    tokio::time::sleep(delay).await;
                    let reply: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if sock.write_all(reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
}
