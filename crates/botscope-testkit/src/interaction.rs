//! Interactions as Discord sends them: snowflakes minted at send time, INTERACTION_CREATE
//! payloads that twilight-model accepts, and Discord's deadlines.
//!
//! An interaction's id is a snowflake whose timestamp is the moment Discord created it; the
//! initial response must reach Discord within [`RESPONSE_DEADLINE`] of it, follow-ups use the
//! token for [`FOLLOWUP_TTL`]. The fake gateway sends what [`FakeInteraction`] describes with
//! a fresh snowflake, and the fake REST API enforces both deadlines from the snowflake alone,
//! as Discord does.
//!
//! ```
//! use botscope_core::snowflake::created_at;
//! use botscope_testkit::interaction::FakeInteraction;
//!
//! let ping = FakeInteraction::command("ping").minted();
//! let created = created_at(ping.id);
//! assert!(created.elapsed().unwrap_or_default() < std::time::Duration::from_secs(1));
//! assert_eq!(ping.json()["data"]["name"], "ping");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use botscope_core::snowflake::{DISCORD_EPOCH_MS, created_at};
use serde_json::{Value, json};

/// How long after its creation Discord accepts an interaction's initial response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(3);

/// How long an interaction token serves follow-ups.
pub const FOLLOWUP_TTL: Duration = Duration::from_secs(15 * 60);

/// The application id of the fake bot's interactions.
pub const APPLICATION_ID: u64 = 900_000_000_000_000_002;

/// A snowflake created at `at` (at most 4,096 per millisecond stay distinct).
pub fn snowflake_at(at: SystemTime) -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let since_epoch = u64::try_from(millis)
        .unwrap_or(u64::MAX)
        .saturating_sub(DISCORD_EPOCH_MS);
    (since_epoch << 22) | (SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xfff)
}

/// The kind of a [`FakeInteraction`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeInteractionKind {
    /// A slash command (`type` 2) with string options.
    Command {
        /// The command's name.
        name: String,
        /// Its options, as `name = value` strings.
        options: Vec<(String, String)>,
    },
    /// An autocomplete request (`type` 4) for the focused option of a command.
    Autocomplete {
        /// The command's name.
        name: String,
        /// The focused option's name and what the user typed so far.
        focused: (String, String),
    },
    /// A button click (`type` 3).
    Button {
        /// The button's `custom_id`.
        custom_id: String,
    },
    /// A modal submitted (`type` 5) with one text input.
    ModalSubmit {
        /// The modal's `custom_id`.
        custom_id: String,
        /// What the user typed.
        value: String,
    },
}

/// An interaction to send through the fake gateway: see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeInteraction {
    kind: FakeInteractionKind,
    guild_id: u64,
    channel_id: u64,
    user_id: u64,
}

impl FakeInteraction {
    fn new(kind: FakeInteractionKind) -> Self {
        Self {
            kind,
            guild_id: 1,
            channel_id: 10,
            user_id: 1_000,
        }
    }

    /// A slash command called `name`.
    pub fn command(name: &str) -> Self {
        Self::new(FakeInteractionKind::Command {
            name: name.to_owned(),
            options: Vec::new(),
        })
    }

    /// Adds a string option to a slash command (ignored for other kinds).
    #[must_use]
    pub fn option(mut self, name: &str, value: &str) -> Self {
        if let FakeInteractionKind::Command { options, .. } = &mut self.kind {
            options.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// An autocomplete request of the command `name` while the user types `typed` into
    /// `option`.
    pub fn autocomplete(name: &str, option: &str, typed: &str) -> Self {
        Self::new(FakeInteractionKind::Autocomplete {
            name: name.to_owned(),
            focused: (option.to_owned(), typed.to_owned()),
        })
    }

    /// A click on the button `custom_id`.
    pub fn button(custom_id: &str) -> Self {
        Self::new(FakeInteractionKind::Button {
            custom_id: custom_id.to_owned(),
        })
    }

    /// A modal `custom_id` submitted with `value` typed in.
    pub fn modal_submit(custom_id: &str, value: &str) -> Self {
        Self::new(FakeInteractionKind::ModalSubmit {
            custom_id: custom_id.to_owned(),
            value: value.to_owned(),
        })
    }

    /// In guild `guild_id` (default 1).
    #[must_use]
    pub fn guild(mut self, guild_id: u64) -> Self {
        self.guild_id = guild_id;
        self
    }

    /// What it is.
    pub fn kind(&self) -> &FakeInteractionKind {
        &self.kind
    }

    /// This interaction created now: a fresh snowflake and token.
    pub fn minted(&self) -> MintedInteraction {
        self.minted_at(SystemTime::now())
    }

    /// This interaction created at `at` (in the past, say, to be late already).
    pub fn minted_at(&self, at: SystemTime) -> MintedInteraction {
        let id = snowflake_at(at);
        MintedInteraction {
            interaction: self.clone(),
            id,
            // Discord's tokens are long opaque strings; this one is recognisable in a leak test.
            token: format!("aW50ZXJhY3Rpb246{id}:fake-interaction-token-do-not-log"),
        }
    }
}

/// A [`FakeInteraction`] with its id and token, as Discord created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedInteraction {
    /// What was sent.
    pub interaction: FakeInteraction,
    /// The interaction's snowflake.
    pub id: u64,
    /// The interaction's token (for the callback and follow-ups).
    pub token: String,
}

impl MintedInteraction {
    /// When Discord created it: the snowflake's time.
    pub fn created(&self) -> SystemTime {
        created_at(self.id)
    }

    /// The INTERACTION_CREATE payload (`d`), as twilight-model deserializes it.
    pub fn json(&self) -> Value {
        let FakeInteraction {
            kind,
            guild_id,
            channel_id,
            user_id,
        } = &self.interaction;
        let (kind_code, data) = match kind {
            FakeInteractionKind::Command { name, options } => (
                2,
                json!({
                    "id": "900000000000000300",
                    "name": name,
                    "type": 1,
                    "options": options
                        .iter()
                        .map(|(name, value)| json!({ "name": name, "type": 3, "value": value }))
                        .collect::<Vec<_>>(),
                }),
            ),
            FakeInteractionKind::Autocomplete {
                name,
                focused: (option, typed),
            } => (
                4,
                json!({
                    "id": "900000000000000300",
                    "name": name,
                    "type": 1,
                    "options": [{ "name": option, "type": 3, "value": typed, "focused": true }],
                }),
            ),
            FakeInteractionKind::Button { custom_id } => {
                (3, json!({ "custom_id": custom_id, "component_type": 2 }))
            }
            FakeInteractionKind::ModalSubmit { custom_id, value } => (
                5,
                json!({
                    "custom_id": custom_id,
                    "components": [{
                        "type": 1,
                        "id": 1,
                        "components": [{ "type": 4, "id": 2, "custom_id": "text", "value": value }],
                    }],
                }),
            ),
        };
        json!({
            "id": self.id.to_string(),
            "application_id": APPLICATION_ID.to_string(),
            "type": kind_code,
            "data": data,
            "guild_id": guild_id.to_string(),
            "channel_id": channel_id.to_string(),
            "member": {
                "user": {
                    "id": user_id.to_string(),
                    "username": "someone",
                    "discriminator": "0001",
                    "avatar": null,
                },
                "roles": [],
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "deaf": false,
                "mute": false,
                "flags": 0,
                "permissions": "0",
            },
            "token": self.token,
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": { "0": guild_id.to_string() },
            "context": 0,
            "attachment_size_limit": 8_388_608,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_snowflakes_carry_their_creation_time() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(created_at(snowflake_at(at)), at);
    }

    #[test]
    fn every_kind_has_its_type_code() {
        let codes: Vec<_> = [
            FakeInteraction::command("ping").option("text", "hi"),
            FakeInteraction::autocomplete("join", "channel", "gen"),
            FakeInteraction::button("vote:yes"),
            FakeInteraction::modal_submit("feedback", "great bot"),
        ]
        .iter()
        .map(|i| i.minted().json()["type"].as_u64())
        .collect();
        assert_eq!(codes, [Some(2), Some(4), Some(3), Some(5)]);
    }
}
