//! A bot's error type with one `From` for botscope, as a user's program: every error of the
//! facade converts with `?`.

use std::error::Error as _;

use botscope::ErrorType;

#[derive(Debug)]
enum BotError {
    Botscope(botscope::Error),
}

impl From<botscope::Error> for BotError {
    fn from(error: botscope::Error) -> Self {
        Self::Botscope(error)
    }
}

fn kind(result: Result<(), BotError>) -> ErrorType {
    let Err(BotError::Botscope(error)) = result else {
        panic!("expected an error")
    };
    assert!(error.source().is_some(), "the original error is the source");
    error.kind()
}

async fn telemetry() -> Result<(), BotError> {
    botscope::Telemetry::builder()
        .namespace("9 lives")
        .serve(false)
        .install()
        .map_err(botscope::Error::from)?;
    Ok(())
}

async fn proxy() -> Result<(), BotError> {
    botscope::http::DiscordProxy::builder()
        .upstream("ftp://discord.com")
        .spawn()
        .await
        .map_err(botscope::Error::from)?;
    Ok(())
}

async fn job() -> Result<(), BotError> {
    botscope::jobs::Job::new("", || async {}).map_err(botscope::Error::from)?;
    Ok(())
}

async fn scheduler() -> Result<(), BotError> {
    tokio_cron_scheduler::Job::new_async("not a schedule", |_, _| Box::pin(async {}))
        .map_err(botscope::Error::from)?;
    Ok(())
}

#[tokio::test]
async fn every_facade_error_converts_into_one() {
    assert_eq!(kind(telemetry().await), ErrorType::Telemetry);
    assert_eq!(kind(proxy().await), ErrorType::Proxy);
    assert_eq!(kind(job().await), ErrorType::Job);
    assert_eq!(kind(scheduler().await), ErrorType::Scheduler);
}
