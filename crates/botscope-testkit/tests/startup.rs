//! A bot's start-up against the fake: its application and user, as twilight-http reads them,
//! and scripted answers with any status, headers and JSON body.

use botscope_testkit::client;
use botscope_testkit::rest::{APPLICATION_ID, BOT_USER_ID, FakeDiscord, Reply};
use serde_json::json;
use twilight_model::oauth::Application;

fn client(fake: &FakeDiscord) -> twilight_http::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    twilight_http::Client::builder()
        .proxy(fake.host(), true)
        .token("fake-token".to_owned())
        .build()
}

#[tokio::test]
async fn a_bot_reads_its_application_and_user_at_start_up() {
    let fake = FakeDiscord::spawn().await.expect("fake");
    let http = client(&fake);
    let application = http
        .current_user_application()
        .await
        .expect("GET applications/@me")
        .model()
        .await
        .expect("an application twilight reads");
    assert_eq!(application.id.get(), APPLICATION_ID);
    assert_eq!(application.bot.map(|bot| bot.id.get()), Some(BOT_USER_ID));
    let me = http
        .current_user()
        .await
        .expect("GET users/@me")
        .model()
        .await
        .expect("a user");
    assert_eq!(me.id.get(), BOT_USER_ID);

    let oauth = client::get(fake.addr(), "/api/v10/oauth2/applications/@me")
        .await
        .expect("GET");
    let oauth: Application = serde_json::from_str(&oauth.text()).expect("the same application");
    assert_eq!(oauth.id.get(), APPLICATION_ID);
}

#[tokio::test]
async fn a_scripted_reply_carries_any_status_headers_and_body() {
    let fake = FakeDiscord::spawn().await.expect("fake");
    let user = json!({
        "id": "42", "username": "scripted", "discriminator": "0001", "global_name": null,
        "avatar": null, "bot": true, "mfa_enabled": false
    });
    fake.push(Reply::json(200, user).header("x-scripted", "yes"));
    let me = client(&fake)
        .current_user()
        .await
        .expect("GET")
        .model()
        .await
        .expect("a user");
    assert_eq!((me.id.get(), me.name.as_str()), (42, "scripted"));

    fake.push(
        Reply::json(
            400,
            json!({ "message": "Invalid Form Body", "code": 50035 }),
        )
        .header("x-scripted", "yes")
        .header("content-type", "application/json; charset=utf-8"),
    );
    let answer = client::get(fake.addr(), "/api/v10/users/@me")
        .await
        .expect("GET");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.header("x-scripted"), Some("yes"));
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        answer.text(),
        r#"{"code":50035,"message":"Invalid Form Body"}"#
    );
}
