//! A GraphQL server for the StarWars-like sample schema of Choreo Connect's
//! GraphQL tests ([`SCHEMA_SDL`], the crate's `schema.graphql`), with a
//! little data: the humans Luke Skywalker (`1000`) and Leia Organa (`1003`),
//! the droids C-3PO (`2000`) and R2-D2 (`2001`), the starship X-wing
//! (`3001`) and one review (EMPIRE, 5 stars).
//!
//! On any path:
//! * `POST` with `application/json` `{"query", "operationName", "variables"}`
//!   (or a JSON array of those: a batch), or `application/graphql` with the
//!   query as the body;
//! * `GET ?query=...&operationName=...&variables=<JSON>`;
//! * a WebSocket upgrade offering `graphql-transport-ws` or `graphql-ws`:
//!   subscriptions (`reviewAdded`, fed by `createReview`), queries and
//!   mutations.
//!
//! Answers are `200` `application/json` GraphQL responses (errors included);
//! a body that is not a GraphQL request gets `400` with
//! `{"errors": [{"message"}]}`, other methods `405`. Every request is
//! recorded ([`RequestSeen`]; upgrades as a `GET` without a body).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{
    BatchRequest, Context, Enum, ID, InputObject, Interface, Object, Schema, SimpleObject, Subscription, Union,
};
use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::ServerError;
use crate::net::{self, ConnInfo, Log, RequestSeen, Resp, Tasks};
use crate::websocket;

/// The schema's SDL as deployed with APIs (`Definitions/schema.graphql`);
/// [`schema`] serves the same types.
pub const SCHEMA_SDL: &str = include_str!("../schema.graphql");

/// An episode of the trilogy.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Episode {
    /// Episode IV.
    #[graphql(name = "NEWHOPE")]
    NewHope,
    /// Episode V.
    #[graphql(name = "EMPIRE")]
    Empire,
    /// Episode VI.
    #[graphql(name = "JEDI")]
    Jedi,
}

const ALL: &[Episode] = &[Episode::NewHope, Episode::Empire, Episode::Jedi];

struct HumanData {
    id: &'static str,
    name: &'static str,
    friends: &'static [&'static str],
    appears_in: &'static [Episode],
    home_planet: Option<&'static str>,
    height: Option<f64>,
    starships: &'static [&'static str],
}

struct DroidData {
    id: &'static str,
    name: &'static str,
    friends: &'static [&'static str],
    appears_in: &'static [Episode],
    primary_function: Option<&'static str>,
}

struct StarshipData {
    id: &'static str,
    name: &'static str,
    length: Option<f64>,
}

static HUMANS: [HumanData; 2] = [
    HumanData {
        id: "1000",
        name: "Luke Skywalker",
        friends: &["1003", "2000", "2001"],
        appears_in: ALL,
        home_planet: Some("Tatooine"),
        height: Some(1.72),
        starships: &["3001"],
    },
    HumanData {
        id: "1003",
        name: "Leia Organa",
        friends: &["1000", "2000", "2001"],
        appears_in: ALL,
        home_planet: Some("Alderaan"),
        height: Some(1.5),
        starships: &[],
    },
];

static DROIDS: [DroidData; 2] = [
    DroidData {
        id: "2000",
        name: "C-3PO",
        friends: &["1000", "1003", "2001"],
        appears_in: ALL,
        primary_function: Some("Protocol"),
    },
    DroidData {
        id: "2001",
        name: "R2-D2",
        friends: &["1000", "1003", "2000"],
        appears_in: ALL,
        primary_function: Some("Astromech"),
    },
];

static STARSHIPS: [StarshipData; 1] = [StarshipData { id: "3001", name: "X-wing", length: Some(12.5) }];

fn find_human(id: &str) -> Option<Human> {
    HUMANS.iter().find(|h| h.id == id).map(Human)
}

fn find_droid(id: &str) -> Option<Droid> {
    DROIDS.iter().find(|d| d.id == id).map(Droid)
}

fn find_character(id: &str) -> Option<Character> {
    find_human(id).map(Character::Human).or_else(|| find_droid(id).map(Character::Droid))
}

fn starship(s: &'static StarshipData) -> Starship {
    Starship { id: ID::from(s.id), name: s.name.to_string(), length: s.length }
}

fn characters(ids: &[&str]) -> Option<Vec<Option<Character>>> {
    Some(ids.iter().map(|id| find_character(id)).collect())
}

fn episodes(list: &[Episode]) -> Vec<Option<Episode>> {
    list.iter().copied().map(Some).collect()
}

/// A human.
pub struct Human(&'static HumanData);

#[Object]
impl Human {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn name(&self) -> String {
        self.0.name.to_string()
    }

    async fn friends(&self) -> Option<Vec<Option<Character>>> {
        characters(self.0.friends)
    }

    async fn appears_in(&self) -> Vec<Option<Episode>> {
        episodes(self.0.appears_in)
    }

    async fn home_planet(&self) -> Option<String> {
        self.0.home_planet.map(str::to_string)
    }

    async fn height(&self) -> Option<f64> {
        self.0.height
    }

    async fn starships(&self) -> Option<Vec<Option<Starship>>> {
        Some(self.0.starships.iter().map(|id| STARSHIPS.iter().find(|s| s.id == *id).map(starship)).collect())
    }
}

/// A droid.
pub struct Droid(&'static DroidData);

#[Object]
impl Droid {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn name(&self) -> String {
        self.0.name.to_string()
    }

    async fn friends(&self) -> Option<Vec<Option<Character>>> {
        characters(self.0.friends)
    }

    async fn appears_in(&self) -> Vec<Option<Episode>> {
        episodes(self.0.appears_in)
    }

    async fn primary_function(&self) -> Option<String> {
        self.0.primary_function.map(str::to_string)
    }
}

/// A starship.
#[derive(SimpleObject, Clone)]
pub struct Starship {
    id: ID,
    name: String,
    length: Option<f64>,
}

/// A human or a droid.
#[derive(Interface)]
#[graphql(
    field(name = "id", ty = "ID"),
    field(name = "name", ty = "String"),
    field(name = "friends", ty = "Option<Vec<Option<Character>>>"),
    field(name = "appears_in", ty = "Vec<Option<Episode>>")
)]
pub enum Character {
    /// A human.
    Human(Human),
    /// A droid.
    Droid(Droid),
}

/// What `search` finds.
#[derive(Union)]
pub enum SearchResult {
    /// A human.
    Human(Human),
    /// A droid.
    Droid(Droid),
    /// A starship.
    Starship(Starship),
}

/// A review of an episode.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Review {
    /// The episode.
    pub episode: Option<Episode>,
    /// 0 to 5.
    pub stars: i32,
    /// What the reviewer said.
    pub commentary: Option<String>,
}

/// A new review.
#[derive(InputObject)]
pub struct ReviewInput {
    stars: i32,
    commentary: Option<String>,
}

/// The reviews of one server, and the feed of new ones.
struct Reviews {
    list: Mutex<Vec<Review>>,
    added: broadcast::Sender<Review>,
}

impl Reviews {
    fn new() -> Reviews {
        let seed =
            Review { episode: Some(Episode::Empire), stars: 5, commentary: Some("This is a great movie!".to_string()) };
        Reviews { list: Mutex::new(vec![seed]), added: broadcast::channel(64).0 }
    }
}

/// The queries.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// R2-D2, or Luke Skywalker for EMPIRE.
    async fn hero(&self, episode: Option<Episode>) -> Option<Character> {
        find_character(if episode == Some(Episode::Empire) { "1000" } else { "2001" })
    }

    async fn human(&self, id: ID) -> Option<Human> {
        find_human(&id)
    }

    async fn droid(&self, id: ID) -> Option<Droid> {
        find_droid(&id)
    }

    async fn reviews(&self, ctx: &Context<'_>, episode: Episode) -> async_graphql::Result<Option<Vec<Option<Review>>>> {
        let reviews = ctx.data::<Arc<Reviews>>()?;
        let list = reviews.list.lock();
        Ok(Some(list.iter().filter(|r| r.episode == Some(episode)).cloned().map(Some).collect()))
    }

    /// Humans, droids and starships whose name contains `text`
    /// (case-insensitive; everything without `text`).
    async fn search(&self, text: Option<String>) -> Option<Vec<Option<SearchResult>>> {
        let text = text.unwrap_or_default().to_lowercase();
        let hit = |name: &str| name.to_lowercase().contains(&text);
        let humans = HUMANS.iter().filter(|h| hit(h.name)).map(|h| SearchResult::Human(Human(h)));
        let droids = DROIDS.iter().filter(|d| hit(d.name)).map(|d| SearchResult::Droid(Droid(d)));
        let ships = STARSHIPS.iter().filter(|s| hit(s.name)).map(|s| SearchResult::Starship(starship(s)));
        Some(humans.chain(droids).chain(ships).map(Some).collect())
    }

    async fn character(&self, id: ID) -> Option<Character> {
        find_character(&id)
    }

    /// The first `first` humans (all without `first`).
    async fn all_humans(&self, first: Option<i32>) -> Option<Vec<Option<Human>>> {
        let n = first.map_or(HUMANS.len(), |n| usize::try_from(n).unwrap_or(0));
        Some(HUMANS.iter().take(n).map(|h| Some(Human(h))).collect())
    }
}

/// The mutations.
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Adds a review (kept by this server) and announces it to
    /// `reviewAdded` subscribers.
    async fn create_review(
        &self,
        ctx: &Context<'_>,
        episode: Option<Episode>,
        review: ReviewInput,
    ) -> async_graphql::Result<Option<Review>> {
        let reviews = ctx.data::<Arc<Reviews>>()?;
        let review = Review { episode, stars: review.stars, commentary: review.commentary };
        reviews.list.lock().push(review.clone());
        // No subscriber is not an error.
        let _ = reviews.added.send(review.clone());
        Ok(Some(review))
    }
}

/// The subscriptions.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Reviews created from now on (of `episode`, if given).
    async fn review_added(
        &self,
        ctx: &Context<'_>,
        episode: Option<Episode>,
    ) -> async_graphql::Result<impl Stream<Item = Option<Review>> + use<>> {
        let reviews = ctx.data::<Arc<Reviews>>()?;
        let feed = BroadcastStream::new(reviews.added.subscribe());
        Ok(feed.filter_map(move |r| {
            let wanted = r.ok().filter(|r| episode.is_none() || r.episode == episode).map(Some);
            futures::future::ready(wanted)
        }))
    }
}

/// The schema type.
pub type StarWarsSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// A schema with its own copy of the data (reviews added by mutations stay
/// in it).
pub fn schema() -> StarWarsSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).data(Arc::new(Reviews::new())).finish()
}

struct State {
    schema: StarWarsSchema,
    requests: Log<RequestSeen>,
    tasks: Tasks,
}

fn graphql_error(status: StatusCode, message: impl std::fmt::Display) -> Resp {
    net::json_response(status, &json!({"errors": [{"message": message.to_string()}]}))
}

async fn handle(state: Arc<State>, info: ConnInfo, mut req: Request<Incoming>) -> Result<Resp, Infallible> {
    if let Some(accept) = websocket::upgrade_accept(&req) {
        return Ok(subscribe(&state, &info, &mut req, &accept));
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(graphql_error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    };
    state.requests.push(RequestSeen::new(&parts, body.clone(), &info));
    let batch = match parts.method {
        Method::GET => match async_graphql::http::parse_query_string(parts.uri.query().unwrap_or("")) {
            Ok(r) => BatchRequest::Single(r),
            Err(e) => return Ok(graphql_error(StatusCode::BAD_REQUEST, e)),
        },
        Method::POST => {
            let ct = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if ct.to_ascii_lowercase().starts_with("application/graphql") && !ct.contains("json") {
                BatchRequest::Single(async_graphql::Request::new(String::from_utf8_lossy(&body)))
            } else {
                match serde_json::from_slice::<BatchRequest>(&body) {
                    Ok(b) => b,
                    Err(e) => {
                        return Ok(graphql_error(StatusCode::BAD_REQUEST, format!("not a GraphQL request: {e}")));
                    }
                }
            }
        }
        _ => {
            let mut resp = graphql_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
            resp.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, POST"));
            return Ok(resp);
        }
    };
    let answer = state.schema.execute_batch(batch).await;
    Ok(match serde_json::to_vec(&answer) {
        Ok(json) => net::respond(StatusCode::OK, "application/json", Bytes::from(json)),
        Err(e) => graphql_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    })
}

/// Accepts a WebSocket upgrade for `graphql-transport-ws` / `graphql-ws`.
fn subscribe(state: &Arc<State>, info: &ConnInfo, req: &mut Request<Incoming>, accept: &str) -> Resp {
    state.requests.push(RequestSeen::of(req.method(), req.uri(), req.version(), req.headers(), Bytes::new(), info));
    let chosen = websocket::offered_protocols(req)
        .into_iter()
        .find_map(|p| WebSocketProtocols::from_str(&p).ok().map(|proto| (p, proto)));
    let Some((name, protocol)) = chosen else {
        return graphql_error(StatusCode::BAD_REQUEST, "offer the graphql-transport-ws or graphql-ws subprotocol");
    };
    let schema = state.schema.clone();
    websocket::on_upgrade(&state.tasks, req, move |ws| async move {
        let (mut sink, stream) = ws.split();
        let input =
            stream.take_while(|m| futures::future::ready(matches!(m, Ok(m) if !m.is_close()))).filter_map(|m| {
                futures::future::ready(match m {
                    Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                    Ok(Message::Binary(b)) => Some(b.to_vec()),
                    _ => None,
                })
            });
        let output = async_graphql::http::WebSocket::new(schema, input, protocol);
        let mut output = std::pin::pin!(output);
        while let Some(msg) = output.next().await {
            let sent = match msg {
                WsMessage::Text(text) => sink.send(Message::text(text)).await,
                WsMessage::Close(code, reason) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    websocket::switching_protocols(accept, Some(&name))
}

/// A GraphQL server running in this process.
pub struct GraphqlServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl GraphqlServer {
    /// Starts one on an ephemeral loopback port.
    pub async fn start() -> Result<GraphqlServer, ServerError> {
        GraphqlServer::start_on(crate::loopback()).await
    }

    /// Starts one listening on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Result<GraphqlServer, ServerError> {
        let (listener, addr) = net::bind(addr).await?;
        let tasks = Tasks::default();
        let state = Arc::new(State { schema: schema(), requests: Log::default(), tasks: tasks.clone() });
        let st = Arc::clone(&state);
        net::spawn_accept(&tasks, listener, None, move |conn, info| {
            let state = Arc::clone(&st);
            async move {
                let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&state), info.clone(), req));
                if let Err(e) = net::http_builder().serve_connection_with_upgrades(TokioIo::new(conn), svc).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
        });
        tracing::debug!(%addr, "GraphQL server listening");
        Ok(GraphqlServer { addr, state })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The schema it serves (its data included).
    pub fn schema(&self) -> &StarWarsSchema {
        &self.state.schema
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestSeen> {
        self.state.requests.snapshot()
    }

    /// Forgets the requests.
    pub fn clear(&self) {
        self.state.requests.clear();
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.state.tasks.stop();
    }

    /// Like [`stop`](Self::stop), and returns once the listeners and
    /// connections are closed.
    pub async fn shutdown(&self) {
        self.state.tasks.shutdown().await;
    }
}

impl Drop for GraphqlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
