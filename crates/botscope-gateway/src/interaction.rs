//! The `type` and `command` labels of an interaction, shared by the tap's
//! `interactions_total` and [`CommandMetrics`](crate::CommandMetrics).
//!
//! `type` is one of `ping`, `application_command`, `message_component`, `autocomplete`,
//! `modal_submit` (else `other`). `command` is the application command's name for commands
//! and autocomplete, through a [`LabelCap`]; the component type for
//! components (`button`, `string_select`, `user_select`, `role_select`,
//! `mentionable_select`, `channel_select`, else `other`); `modal` for a modal submit and
//! `ping` for a ping. Never a `custom_id`, an option's value, a modal's text or a token: of
//! everything a user sends, only the name of a command the bot registered reaches a label,
//! and only through the cap.

use botscope_core::LabelCap;
use opentelemetry::StringValue;
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};
use twilight_model::channel::message::component::ComponentType;

/// The default cap of distinct `command` values per metric.
pub const DEFAULT_COMMAND_CAP: usize = 200;

/// The `type` label of an interaction.
pub fn type_label(kind: InteractionType) -> &'static str {
    match kind {
        InteractionType::Ping => "ping",
        InteractionType::ApplicationCommand => "application_command",
        InteractionType::MessageComponent => "message_component",
        InteractionType::ApplicationCommandAutocomplete => "autocomplete",
        InteractionType::ModalSubmit => "modal_submit",
        _ => "other",
    }
}

/// The `command` label of a component interaction: the component's type.
fn component_label(kind: ComponentType) -> &'static str {
    match kind {
        ComponentType::Button => "button",
        ComponentType::TextSelectMenu => "string_select",
        ComponentType::UserSelectMenu => "user_select",
        ComponentType::RoleSelectMenu => "role_select",
        ComponentType::MentionableSelectMenu => "mentionable_select",
        ComponentType::ChannelSelectMenu => "channel_select",
        _ => "other",
    }
}

/// The `command` label of `interaction`; a command's name passes through `names`.
pub(crate) fn command_label(interaction: &Interaction, names: &LabelCap) -> StringValue {
    match &interaction.data {
        Some(InteractionData::ApplicationCommand(command)) => names.admit(&command.name),
        Some(InteractionData::MessageComponent(component)) => {
            component_label(component.component_type).into()
        }
        Some(InteractionData::ModalSubmit(_)) => "modal".into(),
        _ if interaction.kind == InteractionType::Ping => "ping".into(),
        _ => "other".into(),
    }
}
