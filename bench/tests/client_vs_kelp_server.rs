//! Kelp's HTTP client against Kelp's own HTTP server (kelp_net): the two halves of the project's
//! wire protocol agree on keep-alive, HEAD, bodies of every size, and header passing.

use std::rc::Rc;

use kelp_net::http::client::{Client, ClientResponse};
use kelp_net::http::{Handler, HttpLimits, Request, Response, bind_reuseport, serve_listener};
use kelp_net::runtime::Shutdown;

/// Answers with what it received: "METHOD path?query|x-test header|body length", and the body
/// itself after a newline.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, request: Request) -> Response {
        let summary = format!(
            "{} {}?{}|{}|{}\n",
            request.method.as_str(),
            request.path,
            request.query,
            request.headers.get("x-test").unwrap_or("-"),
            request.body.len()
        );
        let mut body = summary.into_bytes();
        body.extend_from_slice(&request.body);
        Response::new(200).header("X-Echo", "yes").body_bytes(body)
    }
}

fn first_line(response: &ClientResponse) -> String {
    let end = response
        .body
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(response.body.len());
    String::from_utf8_lossy(&response.body[..end]).into_owned()
}

#[test]
fn client_and_server_agree_over_keep_alive() {
    // Proves: 200 requests of mixed methods and sizes (up to 1 MiB) go over one connection to
    // Kelp's server; each answer matches its request; HEAD gets the GET's headers and no body.
    let listener = bind_reuseport("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = Shutdown::new();
    let server_shutdown = shutdown.clone();
    let server = std::thread::spawn(move || {
        let runtime = compio::runtime::Runtime::new().expect("server runtime");
        runtime.block_on(serve_listener(
            listener,
            HttpLimits::default(),
            Rc::new(Echo),
            server_shutdown.wait(),
        ))
    });
    let runtime = compio::runtime::Runtime::new().expect("client runtime");
    runtime.block_on(async {
        let mut client = Client::connect(&addr).await.expect("connect");
        for round in 0..200usize {
            let size = [0, 1, 1000, 70_000, 1 << 20][round % 5];
            let body: Vec<u8> = (0..size).map(|i| (i * 7 + round) as u8).collect();
            let (method, target) = match round % 4 {
                0 => ("GET", format!("/3,01ab?round={round}")),
                1 => ("POST", format!("/upload/{round}?x=1")),
                2 => ("PUT", format!("/p{round}")),
                _ => ("DELETE", format!("/d{round}?q")),
            };
            let body = if method == "GET" || method == "DELETE" {
                Vec::new()
            } else {
                body
            };
            let header = format!("h{round}");
            let response = client
                .request(method, &target, &[("X-Test", &header)], &body)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(response.status, 200);
            assert_eq!(response.header("x-echo"), Some("yes"));
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let expected = format!("{method} {path}?{query}|{header}|{}", body.len());
            assert_eq!(first_line(&response), expected, "round {round}");
            assert!(response.body.ends_with(&body), "round {round}: body echoed");

            let head = client
                .request("HEAD", "/3,01ab", &[], b"")
                .await
                .expect("head");
            let get_length = format!("{}", "HEAD /3,01ab?|-|0\n".len());
            assert_eq!(head.header("content-length"), Some(get_length.as_str()));
            assert!(head.body.is_empty());
        }
        assert_eq!(client.connections_opened(), 1, "one keep-alive connection");
    });
    shutdown.trigger();
    server.join().expect("server thread").expect("server ran");
}
