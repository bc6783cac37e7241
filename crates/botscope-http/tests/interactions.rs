//! Interaction callbacks and follow-ups through the proxy, sent by the real twilight-http
//! client to the testkit's fake Discord, which keeps Discord's deadlines from the
//! interaction's snowflake alone: what the bot's users feel, read from a scrape.

mod common;

use std::time::{Duration, SystemTime};

use botscope_testkit::TestMetrics;
use botscope_testkit::interaction::{APPLICATION_ID, FakeInteraction, MintedInteraction};
use botscope_testkit::rest::FakeDiscord;
use common::{proxy_to, status_of};
use twilight_http::Client;
use twilight_model::http::interaction::{InteractionResponse, InteractionResponseType};
use twilight_model::id::Id;

const LATENCY: &str = "disruptor_interaction_response_seconds";
const RESPONSES: &str = "disruptor_interaction_responses_total";
const FOLLOWUPS: &str = "disruptor_interaction_followups_total";
const SKEW: &str = "disruptor_clock_skew_total";

/// The bot's initial response to `interaction`, as twilight-http sends it.
async fn respond(client: &Client, interaction: &MintedInteraction) -> Result<(), u16> {
    let response = InteractionResponse {
        kind: InteractionResponseType::DeferredChannelMessageWithSource,
        data: None,
    };
    client
        .interaction(Id::new(APPLICATION_ID))
        .create_response(Id::new(interaction.id), &interaction.token, &response)
        .await
        .map(drop)
        .map_err(|error| status_of(&error))
}

/// A follow-up message on `interaction`'s token.
async fn follow_up(client: &Client, interaction: &MintedInteraction) -> Result<(), u16> {
    client
        .interaction(Id::new(APPLICATION_ID))
        .create_followup(&interaction.token)
        .content("done")
        .await
        .map(drop)
        .map_err(|error| status_of(&error))
}

#[tokio::test]
async fn response_latency_and_outcome_come_from_the_snowflake() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;
    let ping = FakeInteraction::command("ping");

    // Answered at once: accepted.
    let fresh = ping.minted();
    assert_eq!(respond(&client, &fresh).await, Ok(()));
    // Answered 3.5 s after the user acted (the snowflake carries the time): Discord has
    // forgotten the interaction.
    let stale = ping.minted_at(SystemTime::now() - Duration::from_millis(3_500));
    assert_eq!(respond(&client, &stale).await, Err(404));
    // In time by our clock, yet unknown to Discord (answered twice, say).
    fake.set_response_deadline(Duration::ZERO);
    let refused = ping.minted_at(SystemTime::now() - Duration::from_millis(50));
    assert_eq!(respond(&client, &refused).await, Err(404));
    // Created in this host's future: its clock runs behind Discord's.
    fake.set_response_deadline(Duration::from_secs(3));
    let ahead = ping.minted_at(SystemTime::now() + Duration::from_secs(2));
    assert_eq!(respond(&client, &ahead).await, Ok(()));
    // A 404 whose JSON code is not 10062: the proxy reads the code, so it is an error.
    fake.push(botscope_testkit::rest::Reply::Status(404));
    assert_eq!(respond(&client, &ping.minted()).await, Err(404));
    // Older than any interaction lives (a forged id, say): late, and no latency.
    let forged = ping.minted_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_420_070_400));
    assert_eq!(respond(&client, &forged).await, Err(404));

    let scrape = metrics.scrape();
    let outcome = |outcome| scrape.value(RESPONSES, &[("outcome", outcome)]);
    assert_eq!(outcome("ok"), Some(2.0));
    assert_eq!(outcome("late"), Some(2.0));
    assert_eq!(outcome("unknown_interaction"), Some(1.0));
    assert_eq!(outcome("error"), Some(1.0));
    assert_eq!(scrape.value(SKEW, &[("reason", "ahead")]), Some(1.0));
    assert_eq!(scrape.value(SKEW, &[("reason", "expired")]), Some(1.0));
    let bucket = |le| scrape.value(&format!("{LATENCY}_bucket"), &[("le", le)]);
    assert!(
        bucket("0.05") >= Some(1.0),
        "the skewed one is recorded at 0"
    );
    assert_eq!(bucket("3"), Some(4.0), "the stale one lies above 3 s");
    assert_eq!(bucket("4"), Some(5.0));
    assert_eq!(scrape.value(&format!("{LATENCY}_count"), &[]), Some(5.0));

    // No token and no interaction id reaches a label.
    // The forged one adds nothing to the sum: five latencies of a few seconds at most.
    let sum = scrape.value(&format!("{LATENCY}_sum"), &[]).expect("sum");
    assert!(sum < 60.0, "latency sum {sum}");
    // (the forged id is a short number, which a scrape's figures may spell by chance)
    assert!(!scrape.text().contains(&forged.token));
    for minted in [&fresh, &stale, &refused, &ahead] {
        assert!(!scrape.text().contains(&minted.token));
        assert!(!scrape.text().contains(&minted.id.to_string()));
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn follow_ups_expire_with_the_token() {
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_followup_ttl(Duration::from_millis(300));
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    let join = FakeInteraction::command("join").minted();
    assert_eq!(respond(&client, &join).await, Ok(()));
    assert_eq!(follow_up(&client, &join).await, Ok(()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(follow_up(&client, &join).await, Err(401));

    let scrape = metrics.scrape();
    let outcome = |outcome| scrape.value(FOLLOWUPS, &[("outcome", outcome)]);
    assert_eq!(outcome("ok"), Some(1.0));
    assert_eq!(outcome("expired"), Some(1.0));
    assert_eq!(scrape.value(RESPONSES, &[("outcome", "ok")]), Some(1.0));
    // Discord counts every 401 against the IP, this one too.
    assert_eq!(
        scrape.value("disruptor_discord_api_invalid_requests", &[]),
        Some(1.0)
    );
    assert!(!scrape.text().contains(&join.token));
    proxy.shutdown().await;
}
