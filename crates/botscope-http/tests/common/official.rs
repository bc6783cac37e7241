//! Discord's official routes (the vendored OpenAPI list) and realistic values to fill them.

use std::collections::BTreeSet;

use botscope_http::route::{self, OTHER, Routes};
use http::Method;
use serde_json::Value;

/// The vendored list: `{ "source", "note", "operations": [{ "method", "path" }] }`.
pub(crate) const VENDORED: &str = include_str!("../data/discord-rest-routes.json");

/// A webhook's own token: 68 characters of base64url.
pub(crate) const WEBHOOK_TOKEN: &str =
    "Xk3cPz9Q-Lw8sRt2_YvBn5mGhJ7aKd4fE6uIo1pWqZxCy0TnMbVlSgHjDeAaRrUuOoII";
/// An interaction's token: base64 of `interaction:<id>:<secret>`, as long as real ones.
pub(crate) const INTERACTION_TOKEN: &str = "aW50ZXJhY3Rpb246MTI4MzQ1Njc4OTAxMjM0NTY3ODpsZE5jWXRBNFhyV2ZvZ1BPT3p1ZXpYRnN2c1lKd2dNWG5NcGRmb3VPcnVvS1J0Y2lRbm1xTk9zVllISkdvU0dFc0lYR1dwbFFhQ3NIWkxFTWJkRGpvbGlDVVNMclZibHZCWlVyWmxYSFBwZUpXdEtHR0VZRWJPaXdCVVdI";
/// Reaction emoji: percent-encoded unicode (as twilight-http sends it), a skin-toned one raw,
/// and a custom `name:id`.
pub(crate) const EMOJI: [&str; 3] = [
    "%F0%9F%91%8D",
    "\u{1f44b}\u{1f3fd}",
    "blobcat_wave:1234567890123456789",
];
/// Invite codes (a random one, a vanity URL) and a guild template's code.
pub(crate) const CODES: [&str; 3] = ["hTKzmak", "discord-developers", "hgM48av5Q69A"];
/// An activity instance id: a string, not a snowflake.
pub(crate) const INSTANCE_ID: &str =
    "i-1276580072696557568-gc-1263225470452428832-1276580070578831390";

/// What a spec parameter stands for, and how its placeholder must read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Param {
    /// A snowflake: a named id placeholder.
    Snowflake,
    /// A poll answer's small integer.
    Integer,
    WebhookToken,
    InteractionToken,
    Emoji,
    Code,
    /// Any other string: any placeholder.
    String,
}

impl Param {
    fn of(name: &str) -> Self {
        match name {
            "webhook_token" => Self::WebhookToken,
            "interaction_token" => Self::InteractionToken,
            "emoji_name" => Self::Emoji,
            "code" => Self::Code,
            "answer_id" => Self::Integer,
            "instance_id" => Self::String,
            name if name.ends_with("_id") || name.contains("_id_") => Self::Snowflake,
            _ => Self::String,
        }
    }

    /// Whether `piece` is an acceptable placeholder for this parameter.
    fn accepts(self, piece: &str) -> bool {
        let placeholder = piece.starts_with('{') && piece.ends_with('}');
        match self {
            Self::Snowflake | Self::Integer => {
                placeholder && piece.ends_with("_id}") && piece != "{id}"
            }
            Self::WebhookToken => piece == "{webhook_token}",
            Self::InteractionToken => piece == "{interaction_token}",
            Self::Emoji => piece == "{emoji}",
            Self::Code => piece == "{code}",
            Self::String => placeholder,
        }
    }
}

/// One operation of a spec.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Operation {
    pub(crate) method: String,
    pub(crate) path: String,
}

/// The operations of a spec file: the vendored form, or an OpenAPI document's `paths`.
pub(crate) fn operations(text: &str) -> Vec<Operation> {
    let spec: Value = serde_json::from_str(text).expect("a spec file is JSON");
    if let Some(list) = spec.get("operations").and_then(Value::as_array) {
        return list
            .iter()
            .map(|op| Operation {
                method: op["method"].as_str().expect("a method").to_owned(),
                path: op["path"].as_str().expect("a path").to_owned(),
            })
            .collect();
    }
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .expect("`operations` or an OpenAPI `paths` object");
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut out: Vec<Operation> = paths
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                })
        })
        .collect();
    out.sort();
    out
}

/// How many ways [`fill`] fills each operation: every emoji, code and token kind once.
pub(crate) const VARIANTS: usize = 3;

/// A distinct, realistic snowflake per parameter name (a 2024-ish timestamp in the top bits).
pub(crate) fn snowflake(name: &str) -> String {
    let salt = name
        .bytes()
        .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (1_283_456_789_012_345_678_u64 + salt % 1_000_000_000_000).to_string()
}

/// The path of `op` filled in for `variant` (below [`VARIANTS`]), and the values filled in,
/// with their kind.
pub(crate) fn fill(op: &Operation, variant: usize) -> (String, Vec<(String, Param)>) {
    let mut filled = String::new();
    let mut values = Vec::new();
    for segment in op.path.trim_start_matches('/').split('/') {
        filled.push('/');
        let Some(name) = segment
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
        else {
            filled.push_str(segment);
            continue;
        };
        let kind = Param::of(name);
        let value = match kind {
            Param::Snowflake => snowflake(name),
            Param::Integer => "3".to_owned(),
            // A follow-up reaches `/webhooks/{application_id}/{token}` with an interaction's.
            Param::WebhookToken if variant == 1 => INTERACTION_TOKEN.to_owned(),
            Param::WebhookToken => WEBHOOK_TOKEN.to_owned(),
            Param::InteractionToken => INTERACTION_TOKEN.to_owned(),
            Param::Emoji => EMOJI[variant % EMOJI.len()].to_owned(),
            Param::Code => CODES[variant % CODES.len()].to_owned(),
            Param::String if name == "instance_id" => INSTANCE_ID.to_owned(),
            Param::String => format!("some-{name}-value"),
        };
        filled.push_str(&value);
        values.push((value, kind));
    }
    (filled, values)
}

/// What is wrong with the label of `op` (filled as `variant`), if anything.
pub(crate) fn check(routes: &Routes, op: &Operation, variant: usize) -> Result<(), String> {
    let method = Method::from_bytes(op.method.as_bytes()).map_err(|e| e.to_string())?;
    let (filled, values) = fill(op, variant);
    let path = format!("/api/v10{filled}?with_counts=true&limit=50");
    let template = route::template(&method, &path);
    let shown = format!("{} {} -> {template}", op.method, op.path);
    if template == OTHER {
        return Err(format!("{shown}: labelled `other`"));
    }
    let parsed = routes.parse(&method, &path);
    if parsed.endpoint().as_str() != template {
        return Err(format!("{shown}: Routes::parse says {}", parsed.endpoint()));
    }
    let spec: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
    let got: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if spec.len() != got.len() {
        return Err(format!(
            "{shown}: {} segments, not {}",
            got.len(),
            spec.len()
        ));
    }
    for (want, piece) in spec.iter().zip(&got) {
        let fits = match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) => Param::of(name).accepts(piece),
            None => want == piece,
        };
        if !fits {
            return Err(format!("{shown}: `{piece}` where the spec has `{want}`"));
        }
    }
    let limiter = parsed
        .limiter_endpoint()
        .map(|endpoint| endpoint.path.clone())
        .unwrap_or_default();
    for (value, kind) in &values {
        if got.contains(&value.as_str()) || (value.len() >= 4 && template.contains(value.as_str()))
        {
            return Err(format!(
                "{shown}: the filled value {value:?} reached the label"
            ));
        }
        // Ids stay in the limiter's path (they pick its bucket); strings are hashed.
        let secret = !matches!(kind, Param::Snowflake | Param::Integer);
        if secret && limiter.contains(value.as_str()) {
            return Err(format!(
                "{shown}: the filled value {value:?} reached the limiter"
            ));
        }
    }
    Ok(())
}

/// Path words of `ops` outside the vocabulary, and the operations labelled wrong.
pub(crate) fn gaps(ops: &[Operation]) -> (BTreeSet<String>, Vec<String>) {
    let vocabulary: BTreeSet<&str> = route::vocabulary().collect();
    let words = ops
        .iter()
        .flat_map(|op| op.path.trim_start_matches('/').split('/'))
        .filter(|segment| !segment.starts_with('{') && !vocabulary.contains(segment))
        .map(str::to_owned)
        .collect();
    let routes = Routes::new(usize::MAX);
    let mut wrong: Vec<String> = ops
        .iter()
        .flat_map(|op| (0..VARIANTS).map(|variant| check(&routes, op, variant)))
        .filter_map(Result::err)
        .collect();
    // Variants of one operation are checked in a row and often fail alike.
    wrong.dedup();
    (words, wrong)
}
