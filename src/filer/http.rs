//! The filer's HTTP server (hyper on tokio) and its routing. Handlers are thin: parse the
//! request, one call into the namespace, the data path or a tree operation, encode.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use super::Filer;
use super::data::Body;
use super::error::{FilerError, FilerResult};
use super::limits::{CONNECTIONS_MAX, HEADER_READ_TIMEOUT_MS};
use super::params::Params;
use super::path::{RequestPath, parse_request_path};
use super::{read, write};

pub type HttpResponse = Response<Body>;

/// Serve connections from `listener` until the task is dropped.
pub async fn serve(filer: Arc<Filer>, listener: tokio::net::TcpListener) {
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("filer: accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let filer = filer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let filer = filer.clone();
                async move { Ok::<_, Infallible>(route(filer, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!("filer: connection: {error}");
            }
        });
    }
}

/// A request as the handlers see it.
pub struct Call {
    pub method: Method,
    pub target: RequestPath,
    pub params: Params,
    pub headers: hyper::HeaderMap,
    pub body: Incoming,
}

async fn route(filer: Arc<Filer>, request: Request<Incoming>) -> HttpResponse {
    filer.metrics.count_method(request.method());
    let response = match dispatch(&filer, request).await {
        Ok(response) => response,
        Err(failure) => error(&failure),
    };
    filer.metrics.count_status(response.status().as_u16());
    response
}

async fn dispatch(filer: &Arc<Filer>, request: Request<Incoming>) -> FilerResult<HttpResponse> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/metrics" && parts.method == Method::GET {
        let text = filer.metrics.render(filer.namespace.store.kind());
        return Ok(respond(200, "text/plain; version=0.0.4", Bytes::from(text)));
    }
    let target = parse_request_path(parts.uri.path())
        .map_err(|e| FilerError::bad_request(format!("{}: {e}", parts.uri.path())))?;
    let params = Params::parse(parts.uri.query().unwrap_or(""))?;
    let call = Call {
        method: parts.method,
        target,
        params,
        headers: parts.headers,
        body,
    };
    match call.method {
        Method::GET | Method::HEAD => read::get(filer, call).await,
        Method::PUT | Method::POST => write::put(filer, call).await,
        Method::DELETE => write::delete(filer, call).await,
        _ => Err(FilerError::new(
            405,
            format!(
                "method {} is not one of GET, HEAD, PUT, POST, DELETE",
                call.method
            ),
        )),
    }
}

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|e| match e {}).boxed()
}

pub fn respond(status: u16, content_type: &str, body: Bytes) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(full(body))
        .expect("valid response")
}

pub fn empty(status: u16) -> HttpResponse {
    Response::builder()
        .status(status)
        .body(full(Bytes::new()))
        .expect("valid response")
}

pub fn json(status: u16, value: &serde_json::Value, pretty: bool) -> HttpResponse {
    let body = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    }
    .expect("JSON values serialize");
    respond(status, "application/json", Bytes::from(body))
}

pub fn error(failure: &FilerError) -> HttpResponse {
    let mut response = json(
        failure.status,
        &serde_json::json!({ "error": failure.message }),
        false,
    );
    if failure.status == 503 {
        response
            .headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    }
    response
}

/// A header's text value, None when absent or not text.
pub fn header<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
