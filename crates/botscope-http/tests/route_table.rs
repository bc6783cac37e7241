//! Route templates of real twilight-http routes, and random paths never leaking a segment.

use botscope_http::route::{self, OTHER};
use http::Method;
use proptest::prelude::*;
use twilight_http::request::channel::reaction::RequestReactionType;
use twilight_http::routing::Route;
use twilight_model::id::Id;

const G: u64 = 381_870_553_235_193_857; // guild
const C: u64 = 745_809_834_183_753_828; // channel
const M: u64 = 1_160_000_000_000_000_001; // message
const U: u64 = 80_351_110_224_678_912; // user
const A: u64 = 302_050_872_383_242_240; // application
const R: u64 = 41_771_983_423_143_936; // role
const W: u64 = 1_000_000_000_000_000_123; // webhook
const WEBHOOK_TOKEN: &str = "aW1hZ2luZS10aGlzLWlzLWEtcmVhbC13ZWJob29rLXRva2VuLXdpdGgtNjgtY2hhcnM";
const INTERACTION_TOKEN: &str =
    "aW50ZXJhY3Rpb246MTE2MDAwMDAwMDAwMDAwMDAwMTpqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk";

fn http_method(route: &Route<'_>) -> Method {
    Method::from_bytes(route.method().name().as_bytes()).expect("a valid method")
}

fn check(route: Route<'_>, expected: &str) {
    let path = format!("/api/v10/{route}");
    let method = http_method(&route);
    let got = route::template(&method, &path);
    assert_eq!(got, expected, "template of {method} {route:?}");
    for secret in [
        WEBHOOK_TOKEN,
        INTERACTION_TOKEN,
        "invitecode",
        "templatecode",
    ] {
        assert!(!got.contains(secret));
    }
    assert!(
        !got.split('/')
            .any(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "an id leaked: {got}"
    );
}

#[test]
#[allow(clippy::too_many_lines)]
fn real_twilight_routes() {
    let thumbs = RequestReactionType::Unicode { name: "👍" };
    let custom = RequestReactionType::Custom {
        id: Id::new(1_234_567_890_123),
        name: Some("blobcat"),
    };
    let table: Vec<(Route<'_>, &str)> = vec![
        (Route::GetCurrentUser, "/users/@me"),
        (Route::UpdateCurrentUser, "/users/@me"),
        (Route::GetUser { user_id: U }, "/users/{user_id}"),
        (Route::GetUserConnections, "/users/@me/connections"),
        (Route::GetUserPrivateChannels, "/users/@me/channels"),
        (Route::CreatePrivateChannel, "/users/@me/channels"),
        (
            Route::GetGuilds {
                after: None,
                before: None,
                limit: Some(100),
                shard: None,
            },
            "/users/@me/guilds",
        ),
        (
            Route::LeaveGuild { guild_id: G },
            "/users/@me/guilds/{guild_id}",
        ),
        (
            Route::GetCurrentUserGuildMember { guild_id: G },
            "/users/@me/guilds/{guild_id}/member",
        ),
        (Route::GetGateway, "/gateway"),
        (Route::GetGatewayBot, "/gateway/bot"),
        (Route::GetVoiceRegions, "/voice/regions"),
        (Route::GetCurrentAuthorizationInformation, "/oauth2/@me"),
        (Route::GetCurrentUserApplicationInfo, "/applications/@me"),
        (
            Route::GetChannel { channel_id: C },
            "/channels/{channel_id}",
        ),
        (
            Route::UpdateChannel { channel_id: C },
            "/channels/{channel_id}",
        ),
        (
            Route::DeleteChannel { channel_id: C },
            "/channels/{channel_id}",
        ),
        (
            Route::CreateMessage { channel_id: C },
            "/channels/{channel_id}/messages",
        ),
        (
            Route::GetMessages {
                after: None,
                around: None,
                before: Some(M),
                channel_id: C,
                limit: Some(50),
            },
            "/channels/{channel_id}/messages",
        ),
        (
            Route::GetMessage {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}",
        ),
        (
            Route::UpdateMessage {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}",
        ),
        (
            Route::DeleteMessage {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}",
        ),
        (
            Route::DeleteMessages { channel_id: C },
            "/channels/{channel_id}/messages/bulk-delete",
        ),
        (
            Route::CrosspostMessage {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}/crosspost",
        ),
        (
            Route::CreateReaction {
                channel_id: C,
                emoji: &thumbs,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        ),
        (
            Route::DeleteReactionCurrentUser {
                channel_id: C,
                emoji: &custom,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
        ),
        (
            Route::DeleteReaction {
                channel_id: C,
                emoji: &custom,
                message_id: M,
                user_id: U,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}",
        ),
        (
            Route::GetReactionUsers {
                after: None,
                channel_id: C,
                emoji: &thumbs,
                limit: None,
                message_id: M,
                kind: None,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
        ),
        (
            Route::DeleteMessageReactions {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}/reactions",
        ),
        (
            Route::CreateTypingTrigger { channel_id: C },
            "/channels/{channel_id}/typing",
        ),
        (
            Route::GetPins {
                channel_id: C,
                limit: None,
                before: None,
            },
            "/channels/{channel_id}/messages/pins",
        ),
        (
            Route::CreateInvite { channel_id: C },
            "/channels/{channel_id}/invites",
        ),
        (
            Route::GetChannelInvites { channel_id: C },
            "/channels/{channel_id}/invites",
        ),
        (
            Route::GetChannelWebhooks { channel_id: C },
            "/channels/{channel_id}/webhooks",
        ),
        (
            Route::CreateWebhook { channel_id: C },
            "/channels/{channel_id}/webhooks",
        ),
        (
            Route::DeletePermissionOverwrite {
                channel_id: C,
                target_id: R,
            },
            "/channels/{channel_id}/permissions/{overwrite_id}",
        ),
        (
            Route::FollowNewsChannel { channel_id: C },
            "/channels/{channel_id}/followers",
        ),
        (
            Route::CreateThread { channel_id: C },
            "/channels/{channel_id}/threads",
        ),
        (
            Route::CreateThreadFromMessage {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/messages/{message_id}/threads",
        ),
        (
            Route::JoinThread { channel_id: C },
            "/channels/{channel_id}/thread-members/@me",
        ),
        (
            Route::AddThreadMember {
                channel_id: C,
                user_id: U,
            },
            "/channels/{channel_id}/thread-members/{user_id}",
        ),
        (
            Route::GetThreadMembers {
                after: None,
                channel_id: C,
                limit: None,
                with_member: Some(true),
            },
            "/channels/{channel_id}/thread-members",
        ),
        (
            Route::GetPublicArchivedThreads {
                before: None,
                channel_id: C,
                limit: None,
            },
            "/channels/{channel_id}/threads/archived/public",
        ),
        (
            Route::GetPrivateArchivedThreads {
                before: None,
                channel_id: C,
                limit: None,
            },
            "/channels/{channel_id}/threads/archived/private",
        ),
        (
            Route::GetJoinedPrivateArchivedThreads {
                before: None,
                channel_id: C,
                limit: None,
            },
            "/channels/{channel_id}/users/@me/threads/archived/private",
        ),
        (
            Route::EndPoll {
                channel_id: C,
                message_id: M,
            },
            "/channels/{channel_id}/polls/{message_id}/expire",
        ),
        (
            Route::GetAnswerVoters {
                after: None,
                answer_id: 1,
                channel_id: C,
                limit: None,
                message_id: M,
            },
            "/channels/{channel_id}/polls/{message_id}/answers/{answer_id}",
        ),
        (
            Route::GetStageInstance { channel_id: C },
            "/stage-instances/{channel_id}",
        ),
        (Route::CreateStageInstance, "/stage-instances"),
        (
            Route::GetGuild {
                guild_id: G,
                with_counts: true,
            },
            "/guilds/{guild_id}",
        ),
        (Route::UpdateGuild { guild_id: G }, "/guilds/{guild_id}"),
        (Route::DeleteGuild { guild_id: G }, "/guilds/{guild_id}"),
        (
            Route::GetChannels { guild_id: G },
            "/guilds/{guild_id}/channels",
        ),
        (
            Route::CreateChannel { guild_id: G },
            "/guilds/{guild_id}/channels",
        ),
        (
            Route::GetActiveThreads { guild_id: G },
            "/guilds/{guild_id}/threads/active",
        ),
        (
            Route::GetMember {
                guild_id: G,
                user_id: U,
            },
            "/guilds/{guild_id}/members/{user_id}",
        ),
        (
            Route::GetGuildMembers {
                after: None,
                guild_id: G,
                limit: Some(1000),
            },
            "/guilds/{guild_id}/members",
        ),
        (
            Route::SearchGuildMembers {
                guild_id: G,
                limit: None,
                query: "someone",
            },
            "/guilds/{guild_id}/members/search",
        ),
        (
            Route::UpdateCurrentMember { guild_id: G },
            "/guilds/{guild_id}/members/@me",
        ),
        (
            Route::UpdateNickname { guild_id: G },
            "/guilds/{guild_id}/members/@me/nick",
        ),
        (
            Route::AddMemberRole {
                guild_id: G,
                role_id: R,
                user_id: U,
            },
            "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
        ),
        (
            Route::RemoveMemberRole {
                guild_id: G,
                role_id: R,
                user_id: U,
            },
            "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
        ),
        (Route::GetBans { guild_id: G }, "/guilds/{guild_id}/bans"),
        (
            Route::CreateBan {
                guild_id: G,
                user_id: U,
            },
            "/guilds/{guild_id}/bans/{user_id}",
        ),
        (
            Route::BulkGuildBan { guild_id: G },
            "/guilds/{guild_id}/bulk-ban",
        ),
        (
            Route::GetGuildRoles { guild_id: G },
            "/guilds/{guild_id}/roles",
        ),
        (
            Route::UpdateRole {
                guild_id: G,
                role_id: R,
            },
            "/guilds/{guild_id}/roles/{role_id}",
        ),
        (
            Route::GetGuildRoleMemberCounts { guild_id: G },
            "/guilds/{guild_id}/roles/member-counts",
        ),
        (
            Route::GetEmojis { guild_id: G },
            "/guilds/{guild_id}/emojis",
        ),
        (
            Route::GetEmoji {
                emoji_id: 99,
                guild_id: G,
            },
            "/guilds/{guild_id}/emojis/{emoji_id}",
        ),
        (
            Route::GetAuditLogs {
                action_type: None,
                after: None,
                before: None,
                guild_id: G,
                limit: Some(10),
                user_id: Some(U),
            },
            "/guilds/{guild_id}/audit-logs",
        ),
        (
            Route::GetGuildPruneCount {
                days: Some(7),
                guild_id: G,
                include_roles: &[],
            },
            "/guilds/{guild_id}/prune",
        ),
        (
            Route::GetGuildInvites { guild_id: G },
            "/guilds/{guild_id}/invites",
        ),
        (
            Route::GetGuildIntegrations { guild_id: G },
            "/guilds/{guild_id}/integrations",
        ),
        (
            Route::DeleteGuildIntegration {
                guild_id: G,
                integration_id: 77,
            },
            "/guilds/{guild_id}/integrations/{integration_id}",
        ),
        (
            Route::GetGuildVanityUrl { guild_id: G },
            "/guilds/{guild_id}/vanity-url",
        ),
        (
            Route::GetGuildVoiceRegions { guild_id: G },
            "/guilds/{guild_id}/regions",
        ),
        (
            Route::GetGuildWelcomeScreen { guild_id: G },
            "/guilds/{guild_id}/welcome-screen",
        ),
        (
            Route::GetGuildWidget { guild_id: G },
            "/guilds/{guild_id}/widget.json",
        ),
        (
            Route::GetGuildWidgetSettings { guild_id: G },
            "/guilds/{guild_id}/widget",
        ),
        (
            Route::GetGuildPreview { guild_id: G },
            "/guilds/{guild_id}/preview",
        ),
        (
            Route::GetGuildOnboarding { guild_id: G },
            "/guilds/{guild_id}/onboarding",
        ),
        (
            Route::UpdateGuildMfa { guild_id: G },
            "/guilds/{guild_id}/mfa",
        ),
        (
            Route::GetGuildStickers { guild_id: G },
            "/guilds/{guild_id}/stickers",
        ),
        (
            Route::GetGuildSticker {
                guild_id: G,
                sticker_id: 55,
            },
            "/guilds/{guild_id}/stickers/{sticker_id}",
        ),
        (
            Route::GetGuildScheduledEvents {
                guild_id: G,
                with_user_count: true,
            },
            "/guilds/{guild_id}/scheduled-events",
        ),
        (
            Route::GetGuildScheduledEvent {
                guild_id: G,
                scheduled_event_id: 66,
                with_user_count: false,
            },
            "/guilds/{guild_id}/scheduled-events/{event_id}",
        ),
        (
            Route::GetGuildScheduledEventUsers {
                after: None,
                before: None,
                guild_id: G,
                limit: None,
                scheduled_event_id: 66,
                with_member: true,
            },
            "/guilds/{guild_id}/scheduled-events/{event_id}/users",
        ),
        (
            Route::GetGuildAutoModerationRules { guild_id: G },
            "/guilds/{guild_id}/auto-moderation/rules",
        ),
        (
            Route::GetAutoModerationRule {
                guild_id: G,
                auto_moderation_rule_id: 88,
            },
            "/guilds/{guild_id}/auto-moderation/rules/{rule_id}",
        ),
        (
            Route::GetCurrentUserVoiceState { guild_id: G },
            "/guilds/{guild_id}/voice-states/@me",
        ),
        (
            Route::GetUserVoiceState {
                guild_id: G,
                user_id: U,
            },
            "/guilds/{guild_id}/voice-states/{user_id}",
        ),
        (
            Route::GetGuildWebhooks { guild_id: G },
            "/guilds/{guild_id}/webhooks",
        ),
        (
            Route::GetTemplates { guild_id: G },
            "/guilds/{guild_id}/templates",
        ),
        (
            Route::SyncTemplate {
                guild_id: G,
                template_code: "templatecode",
            },
            "/guilds/{guild_id}/templates/{code}",
        ),
        (
            Route::GetTemplate {
                template_code: "templatecode",
            },
            "/guilds/templates/{code}",
        ),
        (
            Route::CreateGuildFromTemplate {
                template_code: "templatecode",
            },
            "/guilds/templates/{code}",
        ),
        (
            Route::GetInvite {
                code: "invitecode",
                with_counts: true,
            },
            "/invites/{code}",
        ),
        (
            Route::DeleteInvite { code: "invitecode" },
            "/invites/{code}",
        ),
        (
            Route::GetSticker { sticker_id: 55 },
            "/stickers/{sticker_id}",
        ),
        (Route::GetNitroStickerPacks, "/sticker-packs"),
        (
            Route::GetStickerPack { sticker_pack_id: 5 },
            "/sticker-packs/{pack_id}",
        ),
        (
            Route::GetGlobalCommands {
                application_id: A,
                with_localizations: Some(true),
            },
            "/applications/{application_id}/commands",
        ),
        (
            Route::GetGlobalCommand {
                application_id: A,
                command_id: 11,
            },
            "/applications/{application_id}/commands/{command_id}",
        ),
        (
            Route::GetGuildCommands {
                application_id: A,
                guild_id: G,
                with_localizations: None,
            },
            "/applications/{application_id}/guilds/{guild_id}/commands",
        ),
        (
            Route::GetCommandPermissions {
                application_id: A,
                command_id: 11,
                guild_id: G,
            },
            "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}/permissions",
        ),
        (
            Route::GetGuildCommandPermissions {
                application_id: A,
                guild_id: G,
            },
            "/applications/{application_id}/guilds/{guild_id}/commands/permissions",
        ),
        (
            Route::GetApplicationEmojis { application_id: A },
            "/applications/{application_id}/emojis",
        ),
        (
            Route::GetEntitlements {
                after: None,
                application_id: A,
                before: None,
                exclude_deleted: None,
                exclude_ended: None,
                guild_id: None,
                limit: None,
                sku_ids: &[],
                user_id: None,
            },
            "/applications/{application_id}/entitlements",
        ),
        (
            Route::ConsumeEntitlement {
                application_id: A,
                entitlement_id: 12,
            },
            "/applications/{application_id}/entitlements/{entitlement_id}/consume",
        ),
        (
            Route::GetSKUs { application_id: A },
            "/applications/{application_id}/skus",
        ),
        (
            Route::GetSKUSubscription {
                sku_id: 13,
                subscription_id: 14,
            },
            "/skus/{sku_id}/subscriptions/{subscription_id}",
        ),
        (
            Route::InteractionCallback {
                interaction_id: 1_160_000_000_000_000_777,
                interaction_token: INTERACTION_TOKEN,
                with_response: true,
            },
            "/interactions/{interaction_id}/{interaction_token}/callback",
        ),
        (
            Route::GetInteractionOriginal {
                application_id: A,
                interaction_token: INTERACTION_TOKEN,
            },
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        ),
        (
            Route::GetFollowupMessage {
                application_id: A,
                interaction_token: INTERACTION_TOKEN,
                thread_id: None,
                message_id: M,
            },
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        ),
        (
            Route::ExecuteWebhook {
                thread_id: None,
                token: WEBHOOK_TOKEN,
                wait: Some(true),
                with_components: None,
                webhook_id: W,
            },
            "/webhooks/{webhook_id}/{webhook_token}",
        ),
        (
            Route::GetWebhook {
                token: Some(WEBHOOK_TOKEN),
                webhook_id: W,
            },
            "/webhooks/{webhook_id}/{webhook_token}",
        ),
        (
            Route::GetWebhook {
                token: None,
                webhook_id: W,
            },
            "/webhooks/{webhook_id}",
        ),
        (
            Route::UpdateWebhookMessage {
                message_id: M,
                thread_id: Some(C),
                token: WEBHOOK_TOKEN,
                webhook_id: W,
            },
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        ),
    ];
    assert!(
        table.len() >= 60,
        "at least 60 real routes, got {}",
        table.len()
    );
    for (route, expected) in table {
        check(route, expected);
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        // path words, ids and tokens in any order
        proptest::sample::select(route::vocabulary().collect::<Vec<_>>()).prop_map(str::to_owned),
        "[0-9]{1,20}",
        "[A-Za-z0-9_.~%@:-]{1,70}",
        "\\PC{0,12}",
    ]
}

proptest! {
    #[test]
    fn random_paths_never_leak_a_segment(
        prefix in prop_oneof![Just("/api/v10/"), Just("/api/v9/"), Just("/api/"), Just("/"), Just("")],
        segments in proptest::collection::vec(segment(), 0..16),
        query in proptest::option::of("[a-z=&0-9]{0,20}"),
    ) {
        let mut path = format!("{prefix}{}", segments.join("/"));
        if let Some(query) = query {
            path.push('?');
            path.push_str(&query);
        }
        let template = route::template(&Method::GET, &path);
        if template != OTHER {
            prop_assert!(template.starts_with('/'));
            let pieces: Vec<&str> = template[1..].split('/').collect();
            prop_assert!(pieces.len() <= route::MAX_SEGMENTS);
            for piece in pieces {
                prop_assert!(
                    route::vocabulary().any(|word| word == piece),
                    "{piece:?} of {template:?} is outside the vocabulary (path {path:?})"
                );
            }
        }
    }
}
