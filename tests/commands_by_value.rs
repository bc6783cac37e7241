//! Command handlers that own their interaction, as a user's program: both by-value shapes of
//! the decorator compile without a clone and record under the command's name.

use botscope::gateway::GatewayTap;
use botscope_testkit::TestMetrics;
use botscope_testkit::interaction::FakeInteraction;
use twilight_model::application::interaction::{Interaction, InteractionData};

#[derive(Debug)]
struct BotError;

/// The bot's handler: it takes the interaction by value, as the bot's router hands it on,
/// with some state of the bot's.
async fn handle_command(interaction: Interaction, _state: &str) -> Result<u64, BotError> {
    let id = interaction.id.get();
    tokio::task::yield_now().await;
    match interaction.data {
        Some(InteractionData::ApplicationCommand(data)) if data.name == "broken" => Err(BotError),
        _ => Ok(id),
    }
}

fn interaction(name: &str) -> Interaction {
    serde_json::from_value(FakeInteraction::command(name).minted().json()).expect("an interaction")
}

const COMMANDS: &str = "bot_commands_total";

#[tokio::test]
async fn a_handler_that_owns_the_interaction_is_timed_without_a_clone() {
    let metrics = TestMetrics::new("bot");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let commands = tap.commands();

    // shape 1: the decorator hands the interaction on to the closure building the future
    let ping = interaction("ping");
    let id = ping.id.get();
    let answered = commands
        .run(ping, |interaction| handle_command(interaction, "state"))
        .await;
    assert_eq!(answered.expect("ping answers"), id);
    let failed = commands
        .run(interaction("broken"), |broken| {
            handle_command(broken, "state")
        })
        .await;
    assert!(failed.is_err());

    // shape 2: a guard taken before the handler gets the interaction
    let roll = interaction("roll");
    let guard = commands.start(&roll);
    let result = handle_command(roll, "state").await;
    guard.finish(&result);
    assert!(result.is_ok());
    let abandoned = interaction("roll");
    let guard = commands.start(&abandoned);
    drop(abandoned);
    drop(guard);

    let scrape = metrics.scrape();
    let runs =
        |command, status| scrape.value(COMMANDS, &[("command", command), ("status", status)]);
    assert_eq!(runs("ping", "success"), Some(1.0), "{}", scrape.text());
    assert_eq!(runs("broken", "error"), Some(1.0));
    assert_eq!(runs("roll", "success"), Some(1.0));
    assert_eq!(runs("roll", "cancelled"), Some(1.0));
    assert_eq!(
        scrape.value(
            "bot_command_duration_seconds_count",
            &[("command", "roll"), ("status", "success")]
        ),
        Some(1.0)
    );
}
