//! Helpers for Bulk API 2.0 query jobs over HTTP: create a job, wait for its end, read
//! a page of results with its headers.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{API, Harness};

/// One page of results as the client sees it.
pub struct Page {
    pub status: StatusCode,
    pub number_of_records: Option<String>,
    pub locator: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 CSV")
    }
}

impl Harness {
    /// `POST /jobs/query` with `body`; the raw response.
    pub async fn create_job_raw(&self, version: &str, body: &Value) -> reqwest::Response {
        self.send_json(
            Method::POST,
            &format!("/services/data/{version}/jobs/query"),
            body,
        )
        .await
    }

    /// Creates a `query` job (or `queryAll`) and returns its job info.
    pub async fn create_job(&self, soql: &str, operation: &str) -> Value {
        let response = self
            .create_job_raw("v62.0", &json!({"operation": operation, "query": soql}))
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("job info JSON");
        assert_eq!(status, StatusCode::OK, "create job: {body}");
        body
    }

    pub async fn job_info(&self, id: &str) -> Value {
        self.get_json(&format!("{API}/jobs/query/{id}")).await
    }

    /// Polls the job until it reaches a terminal state (at most ten seconds).
    pub async fn wait_for_job(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.job_info(id).await;
            let state = info["state"].as_str().unwrap_or_default().to_owned();
            if ["JobComplete", "Failed", "Aborted"].contains(&state.as_str()) {
                return info;
            }
            assert!(Instant::now() < deadline, "job {id} still {state}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the job is in `state` (at most ten seconds).
    pub async fn wait_for_state(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.job_info(id).await["state"] != state {
            assert!(Instant::now() < deadline, "job {id} never {state}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A completed job's Id, for `soql`.
    pub async fn completed_job(&self, soql: &str) -> String {
        let id = self.create_job(soql, "query").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let info = self.wait_for_job(&id).await;
        assert_eq!(info["state"], "JobComplete", "{info}");
        id
    }

    /// `GET …/results` with the optional locator and maxRecords, in `version`, with
    /// extra headers.
    pub async fn results_page(
        &self,
        version: &str,
        id: &str,
        locator: Option<&str>,
        max_records: Option<u32>,
        accept_gzip: bool,
    ) -> Page {
        let mut request = self.request(
            Method::GET,
            &format!("/services/data/{version}/jobs/query/{id}/results"),
        );
        if let Some(locator) = locator {
            request = request.query(&[("locator", locator)]);
        }
        if let Some(max) = max_records {
            request = request.query(&[("maxRecords", max)]);
        }
        if accept_gzip {
            request = request.header("Accept-Encoding", "gzip");
        }
        let response = request.send().await.expect("results request");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII header").to_owned())
        };
        let (number_of_records, locator) =
            (header("Sforce-NumberOfRecords"), header("Sforce-Locator"));
        let (content_type, content_encoding) = (header("Content-Type"), header("Content-Encoding"));
        let status = response.status();
        let body = response.bytes().await.expect("results body").to_vec();
        Page {
            status,
            number_of_records,
            locator,
            content_type,
            content_encoding,
            body,
        }
    }

    /// Every page of a completed job, following `Sforce-Locator`, as (records, CSV).
    pub async fn all_pages(&self, id: &str, max_records: Option<u32>) -> Vec<(usize, String)> {
        let mut pages = Vec::new();
        let mut locator: Option<String> = None;
        loop {
            let page = self
                .results_page("v62.0", id, locator.as_deref(), max_records, false)
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text());
            let n: usize = page
                .number_of_records
                .as_deref()
                .expect("Sforce-NumberOfRecords")
                .parse()
                .expect("a count");
            pages.push((n, page.text()));
            match page.locator.as_deref().expect("Sforce-Locator") {
                "null" => return pages,
                next => locator = Some(next.to_owned()),
            }
        }
    }
}
