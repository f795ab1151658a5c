//! A real local HTTP receiver for rest-hook notifications: it records what it is sent
//! and answers as a test tells it (accept, fail with a status, or hold the request).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
    pub body: Value,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The SubscriptionStatus parameter `name` (the Bundle's first entry).
    pub fn status_param(&self, name: &str) -> Option<&Value> {
        self.body["entry"][0]["resource"]["parameter"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    /// `handshake`, `heartbeat`, `event-notification` ...
    pub fn kind(&self) -> String {
        self.status_param("type")
            .and_then(|p| p["valueCode"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// Part `name` of each `notification-event`, in the order sent.
    fn event_parts(&self, name: &str) -> Vec<&Value> {
        self.body["entry"][0]["resource"]["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == "notification-event")
            .filter_map(|p| p["part"].as_array()?.iter().find(|q| q["name"] == name))
            .collect()
    }

    /// The event numbers of the notification, in the order sent.
    pub fn event_numbers(&self) -> Vec<i64> {
        self.event_parts("event-number")
            .into_iter()
            .filter_map(|q| q["valueString"].as_str()?.parse().ok())
            .collect()
    }

    /// The focus references of the notification events.
    pub fn foci(&self) -> Vec<String> {
        self.event_parts("focus")
            .into_iter()
            .filter_map(|q| q["valueReference"]["reference"].as_str().map(str::to_owned))
            .collect()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Accept,
    Fail(u16),
    /// Holds each request this long, then accepts it.
    Hold(Duration),
}

#[derive(Clone)]
struct State {
    received: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    holding: Arc<std::sync::atomic::AtomicUsize>,
}

pub struct Receiver {
    pub url: String,
    state: State,
}

async fn hook(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let mode = *state.mode.lock().unwrap();
    let answered = match mode {
        Mode::Accept => 200,
        Mode::Fail(code) => code,
        Mode::Hold(d) => {
            state
                .holding
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(d).await;
            state
                .holding
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            200
        }
    };
    state.received.lock().unwrap().push(Received {
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl Receiver {
    pub async fn start() -> Self {
        let state = State {
            received: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Accept)),
            holding: Arc::default(),
        };
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(web::to(hook))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests being held right now ([`Mode::Hold`]).
    pub fn holding(&self) -> usize {
        self.state.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The accepted notifications of kind `event-notification`.
    pub fn events(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == 200 && r.kind() == "event-notification")
            .collect()
    }

    /// Waits (up to `within`) until `done` holds for what was received.
    pub async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver did not get what was expected within {within:?}; got {:#?}",
                got.iter()
                    .map(|r| (r.answered, r.kind(), r.event_numbers()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
