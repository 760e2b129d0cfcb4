//! The front door's `/v1` API (DESIGN.md, "The front door") as calls: functions, compositions,
//! invocations, with the tenant's bearer token on every request and API errors kept apart from
//! transport errors, so a caller can say `404 not_found: …` or "start `cargo xtask run`".

use std::time::Duration;

use serde_json::Value;

use crate::http::{self, Endpoint, Progress, Request, Response, percent_encode};

pub struct Client {
    endpoint: Endpoint,
    token: String,
    timeout: Duration,
}

/// An answer of 400 or more: the front door's `{"error":{"code":…,"message":…}}`, with a
/// composition's diagnostics when there are some.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `line:column: severity: message`, one per diagnostic.
    pub diagnostics: Vec<String>,
}

impl ApiError {
    pub fn from_response(response: &Response) -> ApiError {
        let json: Option<Value> = serde_json::from_slice(&response.body).ok();
        let error = json.as_ref().and_then(|j| j.get("error"));
        let text = |field: &str| error.and_then(|e| e.get(field)).and_then(Value::as_str).map(str::to_string);
        let (code, message) = match (text("code"), text("message")) {
            (Some(code), Some(message)) => (code, message),
            // Not the front door's shape (a proxy, another server): show what came.
            _ => {
                let body = String::from_utf8_lossy(&response.body);
                let body = body.trim();
                let body = if body.chars().count() > 200 {
                    format!("{}…", body.chars().take(200).collect::<String>())
                } else {
                    body.to_string()
                };
                (response.reason.to_ascii_lowercase().replace(' ', "_"), body)
            }
        };
        let diagnostics = error
            .and_then(|e| e.get("diagnostics"))
            .and_then(Value::as_array)
            .map(|list| list.iter().map(diagnostic).collect())
            .unwrap_or_default();
        ApiError { status: response.status, code, message, diagnostics }
    }
}

/// One composition diagnostic as `3:17: error: message`.
pub fn diagnostic(d: &Value) -> String {
    let number = |field: &str| d.get(field).and_then(Value::as_u64).unwrap_or(0);
    let text = |field: &str| d.get(field).and_then(Value::as_str).unwrap_or_default();
    format!("{}:{}: {}: {}", number("line"), number("column"), text("severity"), text("message"))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        // The message already is the first diagnostic; list them all only when there are more.
        if self.diagnostics.len() > 1 {
            for d in &self.diagnostics {
                write!(f, "\n  {d}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub enum CallError {
    Http(http::Error),
    Api(ApiError),
    /// A success whose body is not what the API documents.
    BadAnswer(String),
}

impl CallError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Api(ApiError { status: 404, .. }))
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Http(e @ http::Error::Connect { refused: true, .. }) => write!(
                f,
                "{e}\n  is Pappus running? Start it with `cargo xtask run` (its ready line gives the URL and \
                 token), or point --url / PAPPUS_URL at a running kernel"
            ),
            CallError::Http(e) => write!(f, "{e}"),
            CallError::Api(e) => write!(f, "{e}"),
            CallError::BadAnswer(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// A registration's answer: whether it was new (201) or replaced an older one (200), and the
/// JSON body.
pub struct Registered {
    pub created: bool,
    pub json: Value,
}

impl Client {
    /// How long one wait for bytes may last by default: a function may run for up to 300 s
    /// (the data model's largest time budget), and a composition chains several.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    pub fn new(url: &str, token: &str) -> Result<Client, String> {
        Ok(Client { endpoint: Endpoint::parse(url)?, token: token.to_string(), timeout: Self::DEFAULT_TIMEOUT })
    }

    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL requests go to.
    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// Sends a request with the tenant's token; an answer of 400 or more is an [`ApiError`].
    pub fn call(&self, request: Request) -> CallResult<Response> {
        self.call_with_progress(request, &mut |_| {})
    }

    /// [`Client::call`], telling `progress` how the exchange goes. An empty token sends no
    /// `Authorization` header (the open routes: `/healthz`).
    pub fn call_with_progress(&self, request: Request, progress: &mut dyn FnMut(Progress)) -> CallResult<Response> {
        let request = if self.token.is_empty() {
            request
        } else {
            request.header("Authorization", format!("Bearer {}", self.token))
        };
        let response =
            http::send_with_progress(&self.endpoint, &request, self.timeout, progress).map_err(CallError::Http)?;
        if response.status >= 400 {
            return Err(CallError::Api(ApiError::from_response(&response)));
        }
        Ok(response)
    }

    fn json(&self, request: Request) -> CallResult<(u16, Value)> {
        self.json_with_progress(request, &mut |_| {})
    }

    fn json_with_progress(&self, request: Request, progress: &mut dyn FnMut(Progress)) -> CallResult<(u16, Value)> {
        let response = self.call_with_progress(request, progress)?;
        let json = serde_json::from_slice(&response.body)
            .map_err(|e| CallError::BadAnswer(format!("{} {}: not JSON: {e}", response.status, response.reason)))?;
        Ok((response.status, json))
    }

    /// `PUT /v1/functions/{name}?{query}` with the image as the body.
    pub fn put_function(
        &self,
        name: &str,
        query: &str,
        image: &[u8],
        progress: &mut dyn FnMut(Progress),
    ) -> CallResult<Registered> {
        let path = format!("/v1/functions/{}?{query}", percent_encode(name));
        let request = Request::new("PUT", path).header("Content-Type", "application/octet-stream").body(image);
        let (status, json) = self.json_with_progress(request, progress)?;
        Ok(Registered { created: status == 201, json })
    }

    /// `PUT /v1/compositions/{name}` with the program text as the body.
    pub fn put_composition(&self, name: &str, program: &[u8]) -> CallResult<Registered> {
        let path = format!("/v1/compositions/{}", percent_encode(name));
        let request = Request::new("PUT", path).header("Content-Type", "text/plain; charset=utf-8").body(program);
        let (status, json) = self.json(request)?;
        Ok(Registered { created: status == 201, json })
    }

    pub fn get_function(&self, name: &str) -> CallResult<Value> {
        Ok(self.json(Request::new("GET", format!("/v1/functions/{}", percent_encode(name))))?.1)
    }

    /// The program text as it was uploaded.
    pub fn get_composition(&self, name: &str) -> CallResult<String> {
        let response = self.call(Request::new("GET", format!("/v1/compositions/{}", percent_encode(name))))?;
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    pub fn list_functions(&self) -> CallResult<Vec<Value>> {
        self.list("/v1/functions", "functions")
    }

    pub fn list_compositions(&self) -> CallResult<Vec<Value>> {
        self.list("/v1/compositions", "compositions")
    }

    fn list(&self, path: &str, field: &str) -> CallResult<Vec<Value>> {
        let (_, json) = self.json(Request::new("GET", path))?;
        match json.get(field).and_then(Value::as_array) {
            Some(list) => Ok(list.clone()),
            None => Err(CallError::BadAnswer(format!("GET {path}: no {field:?} list in {json}"))),
        }
    }

    pub fn delete_function(&self, name: &str) -> CallResult<()> {
        self.call(Request::new("DELETE", format!("/v1/functions/{}", percent_encode(name)))).map(drop)
    }

    pub fn delete_composition(&self, name: &str) -> CallResult<()> {
        self.call(Request::new("DELETE", format!("/v1/compositions/{}", percent_encode(name)))).map(drop)
    }

    /// `POST /v1/invoke/{name}`: the body in the `content_type` format, the answer in `accept`'s.
    pub fn invoke(
        &self,
        name: &str,
        content_type: &str,
        accept: &str,
        body: &[u8],
        progress: &mut dyn FnMut(Progress),
    ) -> CallResult<Response> {
        let request = Request::new("POST", format!("/v1/invoke/{}", percent_encode(name)))
            .header("Content-Type", content_type)
            .header("Accept", accept)
            .body(body);
        self.call_with_progress(request, progress)
    }

    /// `GET /healthz`: the node's status, version, architecture, uptime and cores.
    pub fn health(&self) -> CallResult<Value> {
        Ok(self.json(Request::new("GET", "/healthz"))?.1)
    }

    /// `GET /metrics` (the operator's token): Prometheus text.
    pub fn metrics(&self) -> CallResult<String> {
        let response = self.call(Request::new("GET", "/metrics"))?;
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, reason: &str, body: &str) -> Response {
        Response { status, reason: reason.into(), headers: Vec::new(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn api_errors() {
        let e = ApiError::from_response(&response(
            404,
            "Not Found",
            r#"{"error":{"code":"not_found","message":"no function named 'x'"}}"#,
        ));
        assert_eq!(e.to_string(), "404 not_found: no function named 'x'");
        assert!(CallError::Api(e).is_not_found());

        let e = ApiError::from_response(&response(
            400,
            "Bad Request",
            r#"{"error":{"code":"bad_composition","message":"3:5: error: unknown set 'q'","diagnostics":[
                {"severity":"error","line":3,"column":5,"message":"unknown set 'q'"},
                {"severity":"warning","line":1,"column":10,"message":"function 'f' is not registered"}]}}"#,
        ));
        assert_eq!(
            e.to_string(),
            "400 bad_composition: 3:5: error: unknown set 'q'\n  3:5: error: unknown set 'q'\n  \
             1:10: warning: function 'f' is not registered"
        );

        let e = ApiError::from_response(&response(502, "Bad Gateway", "upstream down\n"));
        assert_eq!(e.to_string(), "502 bad_gateway: upstream down");
        assert!(!CallError::Api(e).is_not_found());
    }

    #[test]
    fn refused_connections_say_what_to_start() {
        let refused = CallError::Http(http::Error::Connect {
            url: "http://127.0.0.1:8080".into(),
            refused: true,
            reason: "Connection refused (os error 111)".into(),
        });
        let text = refused.to_string();
        assert!(text.starts_with("cannot connect to http://127.0.0.1:8080: Connection refused"), "{text}");
        assert!(text.contains("cargo xtask run"), "{text}");
    }

    #[test]
    fn a_closed_port_is_refused() {
        // Bind then drop: the port is very likely closed for the next instant.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "t").unwrap();
        match client.list_functions() {
            Err(e @ CallError::Http(http::Error::Connect { refused: true, .. })) => {
                assert!(e.to_string().contains("cargo xtask run"))
            }
            Err(other) => panic!("expected refused, got {other}"),
            Ok(_) => panic!("expected refused"),
        }
    }

    /// The client against a one-shot fake server on a loopback port: what it sends and what it
    /// makes of the answer.
    #[test]
    fn exchange_with_a_fake_server() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.ends_with(b"\r\n\r\nsrc") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"name":"c","inputs":["a"],"outputs":["b"],"warnings":[]}"#;
            write!(stream, "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
            String::from_utf8(request).unwrap()
        });
        let client = Client::new(&format!("http://127.0.0.1:{port}"), "tok").unwrap();
        let registered = client.put_composition("c", b"src").unwrap();
        assert!(registered.created);
        assert_eq!(registered.json["outputs"][0], "b");
        let request = server.join().unwrap();
        assert!(request.starts_with("PUT /v1/compositions/c HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nAuthorization: Bearer tok\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 3\r\n"), "{request}");
    }
}
