//! The ceiling of this machine for `cargo xtask bench`: a minimal HTTP/1.1 server that
//! answers every request with the same small JSON body, as fast as hyper can.
//! Usage: `static-responder <port>`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &str = r#"{"request_id":"00000000-0000-0000-0000-000000000000","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"s.AAAAAAAAAAAAAAAAAAAAAAAA","accessor":"AAAAAAAAAAAAAAAAAAAAAAAA","policies":["default"],"token_policies":["default"],"metadata":null,"lease_duration":3600,"renewable":true,"entity_id":"","token_type":"service","orphan":false,"mfa_requirement":null,"num_uses":0}}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: static-responder <port>")?
        .parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(port))
}

async fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
