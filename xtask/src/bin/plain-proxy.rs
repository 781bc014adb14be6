//! The floor of a proxy for `cargo xtask bench`: a bare hyper forwarder with nothing of
//! an agent in it (no cache, no token handling, no path checks, no timeouts, no metrics),
//! so the bench can show what two HTTP/1.1 hops cost on this machine by themselves.
//! Usage: `plain-proxy <listen port> <upstream host:port>`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Upstream = Client<HttpConnector, Full<Bytes>>;
type Answer = Either<Incoming, Empty<Bytes>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: plain-proxy <listen port> <upstream host:port>".into());
    };
    let port: u16 = port.parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(port, upstream))
}

async fn serve(port: u16, upstream: String) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                forward(client.clone(), upstream.clone(), request)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the request, sends it upstream, and streams the answer back.
async fn forward(
    client: Upstream,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<Answer>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes()) else {
        return Ok(failed());
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(uri) = format!("http://{upstream}{target}").parse::<Uri>() else {
        return Ok(failed());
    };
    parts.uri = uri;
    match client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(answer) => Ok(answer.map(Either::Left)),
        Err(_) => Ok(failed()),
    }
}

/// A 502 with no body: the load generator counts it as a failure.
fn failed() -> Response<Answer> {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
