//! The rate limiter as the server's request log sees it: background requests at the org's
//! rate, an interactive one ahead of them.

use super::*;

#[tokio::test]
async fn twenty_background_requests_at_ten_per_second_and_an_interactive_one_in_the_middle() {
    let emulator = start(0).await;
    let rate = Rate::per_second(10).unwrap();
    let client = client_with(config(&emulator), password(), rate);
    client.token().await.unwrap();
    emulator.clear_requests();

    let background: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .query("SELECT Id FROM Account")
                    .collect_records()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(950)).await;
    let issued: DateTime<Utc> = Utc::now();
    client
        .with_priority(Priority::Interactive)
        .query("SELECT Id FROM Contact")
        .collect_records()
        .await
        .unwrap();
    for task in background {
        task.await.unwrap().unwrap();
    }

    let requests = api_requests(&emulator);
    assert_eq!(requests.len(), 21);
    let is_interactive =
        |r: &LoggedRequest| r.query.as_deref().is_some_and(|q| q.contains("Contact"));
    let background_times: Vec<DateTime<Utc>> = requests
        .iter()
        .filter(|r| !is_interactive(r))
        .map(|r| r.time)
        .collect();
    let span = (*background_times.iter().max().unwrap() - *background_times.iter().min().unwrap())
        .to_std()
        .unwrap();
    assert!(
        span >= Duration::from_millis(1900),
        "20 background requests took {span:?}"
    );

    let position = requests.iter().position(is_interactive).unwrap();
    let waited = (requests[position].time - issued)
        .to_std()
        .unwrap_or_default();
    // One token interval, plus a little for the request to reach the server on a busy machine.
    assert!(
        waited <= rate.interval() + Duration::from_millis(50),
        "interactive waited {waited:?}"
    );
    // Background requests queued before it were still waiting when it went.
    let background_after = requests.len() - position - 1;
    assert!(
        background_after >= 8,
        "only {background_after} background requests after it"
    );
}
