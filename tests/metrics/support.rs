//! Reading `/metrics` as Prometheus would: fetched over HTTP, parsed by Python's
//! `prometheus_client` (tests/metrics/parse.py), and looked up by name and labels.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// One scrape's samples.
#[derive(Debug)]
pub struct Scrape {
    pub body: String,
    samples: Vec<Value>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`; `None` when
    /// there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for sample in &self.samples {
            if sample["name"] != name {
                continue;
            }
            if labels
                .iter()
                .all(|(key, value)| sample["labels"][key].as_str() == Some(value))
            {
                *found.get_or_insert(0.0) += sample["value"].as_f64().unwrap();
            }
        }
        found
    }

    /// [`Scrape::get`], 0 when absent (a counter not yet incremented).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The Prometheus type of the family of `name` (`counter`, `gauge`, `histogram`).
    pub fn type_of(&self, name: &str) -> Option<String> {
        self.samples
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["type"].as_str().unwrap().to_owned())
    }
}

/// `GET http://addr/metrics`, with `token` as the bearer: the status and the body.
pub async fn fetch(addr: SocketAddr, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Scrapes `addr` and parses the body with `prometheus_client`.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = fetch(addr, None).await;
    assert_eq!(status, 200, "{body}");
    Scrape {
        samples: parse(&body).await,
        body,
    }
}

/// The samples of `body`, as `prometheus_client.parser` reads them.
async fn parse(body: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/metrics/parse.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "prometheus_client cannot parse /metrics (pip install -r \
         tests/clients/python/requirements.txt): {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
