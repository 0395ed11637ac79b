use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use super::*;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// One request on a new connection, over HTTP/1.1 or h2c.
async fn call(it: &Interceptor, h2: bool, method: Method, path: &str, body: &str) -> Reply {
    let tcp = tokio::net::TcpStream::connect(it.addr).await.expect("connect");
    let io = TokioIo::new(tcp);
    let mut req = Request::builder().method(method).header(CONTENT_TYPE, "application/json");
    req = if h2 { req.uri(format!("{}{path}", it.url())) } else { req.uri(path).header(HOST, "interceptor.test") };
    let req = req.body(Full::new(Bytes::from(body.to_string()))).expect("request");
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2");
        tokio::spawn(conn);
        send.send_request(req).await.expect("send")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1");
        tokio::spawn(conn);
        send.send_request(req).await.expect("send")
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply { status: parts.status, headers: parts.headers, body }
}

async fn get(it: &Interceptor, path: &str) -> Value {
    let r = call(it, false, Method::GET, path, "").await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}");
    r.json()
}

async fn post(it: &Interceptor, path: &str, body: &str) -> Reply {
    call(it, false, Method::POST, path, body).await
}

const CALL: &str = r#"{"requestHeaders":{":path":"/pets"},"requestTrailers":{},"requestBody":"aGVsbG8=","invocationContext":{"method":"GET"}}"#;

#[tokio::test]
async fn default_answers_on_http1_and_h2c() {
    let it = Interceptor::start().await.unwrap();
    assert_eq!(get(&it, "/interceptor/status").await, json!({"status": "NONE", "requests": 0, "responses": 0}));
    assert_eq!(get(&it, "/interceptor/request").await, Value::Null);
    assert_eq!(get(&it, "/interceptor/request-headers").await, Value::Null);

    for h2 in [false, true] {
        let r = call(&it, h2, Method::POST, HANDLE_REQUEST_PATH, CALL).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        assert_eq!(
            r.json(),
            json!({"headersToAdd": {"x-intercepted-by": "test-interceptor"}, "interceptorContext": {"seen": "request"}})
        );
    }
    assert_eq!(get(&it, "/interceptor/status").await["status"], "REQUEST_ONLY");

    let r = call(&it, true, Method::POST, HANDLE_RESPONSE_PATH, r#"{"responseCode":200}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"headersToAdd": {"x-response-intercepted-by": "test-interceptor"}}));
    assert_eq!(get(&it, "/interceptor/status").await, json!({"status": "BOTH", "requests": 2, "responses": 1}));
    assert_eq!(it.state().status(), CallStatus::Both);
    assert_eq!(get(&it, "/interceptor/response").await, json!({"responseCode": 200}));
}

#[tokio::test]
async fn records_bodies_and_headers() {
    let it = Interceptor::start().await.unwrap();
    post(&it, HANDLE_REQUEST_PATH, CALL).await;
    assert_eq!(get(&it, "/interceptor/request").await, serde_json::from_str::<Value>(CALL).unwrap());
    let headers = get(&it, "/interceptor/request-headers").await;
    assert_eq!(headers[":authority"], "interceptor.test");
    assert_eq!(headers["host"], "interceptor.test");
    assert_eq!(headers[":method"], "POST");
    assert_eq!(headers[":path"], HANDLE_REQUEST_PATH);
    assert_eq!(headers[":version"], "HTTP/1.1");
    assert_eq!(headers["content-type"], "application/json");

    call(&it, true, Method::POST, HANDLE_RESPONSE_PATH, "not json").await;
    assert_eq!(get(&it, "/interceptor/response").await, "not json");
    let headers = get(&it, "/interceptor/response-headers").await;
    assert_eq!(headers[":authority"], format!("127.0.0.1:{}", it.port()));
    assert_eq!(headers[":version"], "HTTP/2.0");
    assert_eq!(headers[":scheme"], "http");
    assert_eq!(headers["content-type"], "application/json");
    // The request side is untouched.
    assert_eq!(get(&it, "/interceptor/request-headers").await[":version"], "HTTP/1.1");
}

#[tokio::test]
async fn scripted_answers_status_and_clear() {
    let it = Interceptor::start().await.unwrap();
    let answer = json!({"directRespond": true, "responseCode": 403, "body": "ZGVuaWVk"});
    let r = post(&it, "/interceptor/request-answer", &json!({"status": 200, "body": answer}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = post(&it, "/interceptor/response-answer", r#"{"status": 500, "body": {"error": "boom"}}"#).await;
    assert_eq!(r.status, StatusCode::OK);

    // Every following call gets the scripted answer.
    for _ in 0..2 {
        let r = post(&it, HANDLE_REQUEST_PATH, CALL).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        assert_eq!(r.json(), answer);
    }
    assert_eq!(get(&it, "/interceptor/status").await["status"], "REQUEST_ONLY");
    let r = post(&it, HANDLE_RESPONSE_PATH, "{}").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json(), json!({"error": "boom"}));
    assert_eq!(get(&it, "/interceptor/status").await, json!({"status": "BOTH", "requests": 2, "responses": 1}));

    let r = post(&it, "/interceptor/clear-status", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(get(&it, "/interceptor/status").await, json!({"status": "NONE", "requests": 0, "responses": 0}));
    assert_eq!(get(&it, "/interceptor/request").await, Value::Null);
    assert_eq!(get(&it, "/interceptor/response").await, Value::Null);
    assert_eq!(get(&it, "/interceptor/response-headers").await, Value::Null);
    // Back to the defaults.
    let r = post(&it, HANDLE_REQUEST_PATH, CALL).await;
    assert_eq!(r.body, DEFAULT_REQUEST_ANSWER.as_bytes());
    let r = post(&it, HANDLE_RESPONSE_PATH, CALL).await;
    assert_eq!(r.body, DEFAULT_RESPONSE_ANSWER.as_bytes());
    assert_eq!(get(&it, "/interceptor/status").await["status"], "BOTH");
}

#[tokio::test]
async fn raw_bodies_are_sent_verbatim() {
    let it = Interceptor::start().await.unwrap();
    post(&it, "/interceptor/request-answer", r#"{"status": 200, "raw": "{not json"}"#).await;
    let r = post(&it, HANDLE_REQUEST_PATH, CALL).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "{not json");
    assert_eq!(r.headers[CONTENT_TYPE], "application/json");

    // A string `body` is raw too; contentType is settable.
    post(&it, "/interceptor/response-answer", r#"{"body": "plain", "contentType": "text/plain"}"#).await;
    let r = call(&it, true, Method::POST, HANDLE_RESPONSE_PATH, "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "plain");
    assert_eq!(r.headers[CONTENT_TYPE], "text/plain");
}

#[tokio::test]
async fn no_content_answers() {
    let it = Interceptor::start().await.unwrap();
    post(&it, "/interceptor/request-answer", r#"{"status": 204}"#).await;
    // A body given with 204 is not sent.
    post(&it, "/interceptor/response-answer", r#"{"status": 204, "body": {"ignored": true}}"#).await;
    for (h2, path) in [(false, HANDLE_REQUEST_PATH), (true, HANDLE_REQUEST_PATH), (false, HANDLE_RESPONSE_PATH)] {
        let r = call(&it, h2, Method::POST, path, CALL).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path} h2={h2}");
        assert!(r.body.is_empty());
        assert!(r.headers.get(CONTENT_TYPE).is_none());
    }
    assert_eq!(get(&it, "/interceptor/status").await["status"], "BOTH");
}

#[tokio::test]
async fn in_process_scripting_and_delay() {
    let it = Interceptor::start().await.unwrap();
    it.state().set_response_answer(Answer::no_content().with_delay(Duration::from_millis(150)));
    it.state().set_request_answer(Answer::json(StatusCode::OK, &json!({"headersToRemove": ["x-a"]})));
    let r = post(&it, HANDLE_REQUEST_PATH, CALL).await;
    assert_eq!(r.json(), json!({"headersToRemove": ["x-a"]}));
    let start = Instant::now();
    let r = post(&it, HANDLE_RESPONSE_PATH, "{}").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(it.state().calls(), (1, 1));
    assert_eq!(it.state().last_request(), Some(serde_json::from_str(CALL).unwrap()));

    post(&it, "/interceptor/request-answer", r#"{"status": 200, "body": {}, "delayMs": 100}"#).await;
    let start = Instant::now();
    let r = post(&it, HANDLE_REQUEST_PATH, CALL).await;
    assert_eq!(r.json(), json!({}));
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn manager_errors() {
    let it = Interceptor::start().await.unwrap();
    for bad in [
        "{not json",
        "[]",
        r#"{"status": 99}"#,
        r#"{"status": 1000}"#,
        r#"{"status": "200"}"#,
        r#"{"body": {}, "raw": "x"}"#,
        r#"{"raw": 5}"#,
        r#"{"stauts": 200}"#,
        r#"{"delayMs": -1}"#,
        r#"{"contentType": "a\nb"}"#,
    ] {
        let r = post(&it, "/interceptor/request-answer", bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["error"].is_string(), "{bad}");
    }
    // Nothing was scripted.
    assert_eq!(post(&it, HANDLE_REQUEST_PATH, CALL).await.body, DEFAULT_REQUEST_ANSWER.as_bytes());

    for (method, path, status) in [
        (Method::GET, "/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/interceptor/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/api/v1/handle-other", StatusCode::NOT_FOUND),
        (Method::GET, HANDLE_REQUEST_PATH, StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/interceptor/status", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/interceptor/clear-status", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/interceptor/request-answer", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let r = call(&it, false, method.clone(), path, "").await;
        assert_eq!(r.status, status, "{method} {path}");
        assert!(r.json()["error"].is_string());
    }
    // A GET on a handler is not recorded as a call.
    assert_eq!(it.state().calls(), (1, 0));
}

#[tokio::test]
async fn stop_closes_the_listener() {
    let it = Interceptor::start().await.unwrap();
    let addr = it.addr;
    it.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
