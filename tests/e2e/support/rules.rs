//! What Discord refuses, as its documentation states it (`discord/discord-api-docs`, pages under
//! `developers/`): message and embed limits (`resources/message`), autocomplete answers and
//! command shapes (`interactions/application-commands`). The fake runs every body the bot
//! sends through these and answers a breach as Discord does: 400 with code 50035 and the
//! offending field's path. The unit test at the bottom holds the bot's own command list to
//! the same shape rules.
//!
//! Not here: HTTP plumbing (`fake.rs`) or the deadlines of interactions (`fake.rs`).

use serde_json::{json, Map, Value};

/// One breach: the JSON path of the field (e.g. `data.embeds.0.description`) and why.
#[derive(Debug, Clone)]
pub struct Breach {
    pub path: String,
    pub code: &'static str,
    pub message: String,
}

/// Discord's "Invalid Form Body" answer for `breaches`, errors nested by path.
pub fn invalid_form_body(breaches: &[Breach]) -> Value {
    let mut errors = Map::new();
    for breach in breaches {
        let mut at = &mut errors;
        for part in breach.path.split('.').filter(|p| !p.is_empty()) {
            at = at
                .entry(part)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("objects all the way");
        }
        at.entry("_errors")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("an array")
            .push(json!({"code": breach.code, "message": breach.message}));
    }
    json!({"code": 50035, "message": "Invalid Form Body", "errors": errors})
}

struct Check {
    breaches: Vec<Breach>,
}

impl Check {
    fn new() -> Self {
        Self { breaches: vec![] }
    }

    fn fail(&mut self, path: &str, code: &'static str, message: String) {
        self.breaches.push(Breach {
            path: path.to_owned(),
            code,
            message,
        });
    }

    /// A string of at most `max` characters (Discord counts characters, not bytes).
    fn length(&mut self, path: &str, value: &Value, min: usize, max: usize) -> usize {
        let Some(text) = value.as_str() else { return 0 };
        let count = text.chars().count();
        if count < min || count > max {
            self.fail(
                path,
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between {min} and {max} in length."),
            );
        }
        count
    }

    fn at_most(&mut self, path: &str, value: &Value, max: usize) -> usize {
        let count = value.as_array().map_or(0, Vec::len);
        if count > max {
            self.fail(
                path,
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {max} or fewer in length."),
            );
        }
        count
    }

    fn done(self) -> Result<(), Vec<Breach>> {
        if self.breaches.is_empty() {
            Ok(())
        } else {
            Err(self.breaches)
        }
    }
}

/// A message body: content, embeds and allowed mentions (`resources/message`, embed limits).
pub fn message(body: &Value) -> Result<(), Vec<Breach>> {
    let mut check = Check::new();
    message_into(&mut check, "", body);
    check.done()
}

fn message_into(check: &mut Check, prefix: &str, body: &Value) {
    check.length(&format!("{prefix}content"), &body["content"], 0, 2000);
    check.at_most(&format!("{prefix}embeds"), &body["embeds"], 10);
    for (n, embed) in body["embeds"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{prefix}embeds.{n}.");
        let mut total = check.length(&format!("{at}title"), &embed["title"], 0, 256);
        total += check.length(&format!("{at}description"), &embed["description"], 0, 4096);
        total += check.length(
            &format!("{at}footer.text"),
            &embed["footer"]["text"],
            0,
            2048,
        );
        total += check.length(
            &format!("{at}author.name"),
            &embed["author"]["name"],
            0,
            256,
        );
        check.at_most(&format!("{at}fields"), &embed["fields"], 25);
        for (f, field) in embed["fields"].as_array().into_iter().flatten().enumerate() {
            total += check.length(&format!("{at}fields.{f}.name"), &field["name"], 1, 256);
            total += check.length(&format!("{at}fields.{f}.value"), &field["value"], 1, 1024);
        }
        if total > 6000 {
            check.fail(
                &format!("{prefix}embeds"),
                "MAX_EMBED_SIZE_EXCEEDED",
                "Embed size exceeds maximum size of 6000".into(),
            );
        }
    }
    for list in ["users", "roles"] {
        check.at_most(
            &format!("{prefix}allowed_mentions.{list}"),
            &body["allowed_mentions"][list],
            100,
        );
    }
    // `components/reference`: up to 5 action rows of up to 5 buttons; a button's custom_id
    // 1-100 characters, its label at most 80.
    check.at_most(&format!("{prefix}components"), &body["components"], 5);
    for (r, row) in body["components"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{prefix}components.{r}.components");
        check.at_most(&at, &row["components"], 5);
        for (b, button) in row["components"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            check.length(&format!("{at}.{b}.custom_id"), &button["custom_id"], 1, 100);
            check.length(&format!("{at}.{b}.label"), &button["label"], 0, 80);
        }
    }
}

/// An interaction callback: a message (types 4 and 7) or autocomplete choices (type 8).
pub fn callback(body: &Value) -> Result<(), Vec<Breach>> {
    let mut check = Check::new();
    match body["type"].as_u64() {
        Some(4 | 7) => message_into(&mut check, "data.", &body["data"]),
        Some(8) => {
            let choices = &body["data"]["choices"];
            check.at_most("data.choices", choices, 25);
            for (n, choice) in choices.as_array().into_iter().flatten().enumerate() {
                check.length(&format!("data.choices.{n}.name"), &choice["name"], 1, 100);
                check.length(&format!("data.choices.{n}.value"), &choice["value"], 1, 100);
            }
        }
        Some(1 | 5 | 6 | 9) => {}
        other => check.fail(
            "type",
            "BASE_TYPE_CHOICES",
            format!("{other:?} is not a type"),
        ),
    }
    check.done()
}

/// A command list as registered with `PUT .../commands` (`interactions/application-commands`).
pub fn commands(body: &Value) -> Result<(), Vec<Breach>> {
    let mut check = Check::new();
    check.at_most("", body, 100);
    for (n, command) in body.as_array().into_iter().flatten().enumerate() {
        let at = format!("{n}.");
        let chat_input = command["type"].as_u64().unwrap_or(1) == 1;
        if chat_input {
            name(&mut check, &format!("{at}name"), &command["name"]);
            check.length(&format!("{at}description"), &command["description"], 1, 100);
        } else {
            check.length(&format!("{at}name"), &command["name"], 1, 32);
            check.length(&format!("{at}description"), &command["description"], 0, 0);
        }
        let size = options(&mut check, &at, &command["options"], 0)
            + text_len(&command["name"])
            + text_len(&command["description"]);
        if size > 4000 {
            check.fail(
                &at,
                "APPLICATION_COMMAND_TOO_LARGE",
                format!("Command exceeds maximum size (4000): {size}"),
            );
        }
    }
    check.done()
}

fn text_len(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

/// A lowercase name as chat input commands and options need (`-_'`, letters, digits; 1-32).
fn name(check: &mut Check, path: &str, value: &Value) {
    let text = value.as_str().unwrap_or_default();
    let valid = (1..=32).contains(&text.chars().count())
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "-_'".contains(c))
        && text.to_lowercase() == text;
    if !valid {
        check.fail(
            path,
            "APPLICATION_COMMAND_INVALID_NAME",
            format!("Command name is invalid: {text:?}"),
        );
    }
}

/// Checks `options` at `depth` (subcommand groups nest two levels); returns their size in
/// characters (names, descriptions, choice values), which counts toward the 4000 limit.
fn options(check: &mut Check, prefix: &str, list: &Value, depth: usize) -> usize {
    let path = format!("{prefix}options");
    check.at_most(&path, list, 25);
    let mut size = 0;
    let mut optional_seen = false;
    for (n, option) in list.as_array().into_iter().flatten().enumerate() {
        let at = format!("{path}.{n}.");
        name(check, &format!("{at}name"), &option["name"]);
        check.length(&format!("{at}description"), &option["description"], 1, 100);
        size += text_len(&option["name"]) + text_len(&option["description"]);
        let kind = option["type"].as_u64().unwrap_or(0);
        if matches!(kind, 1 | 2) {
            if depth >= 2 || (kind == 2 && depth >= 1) {
                check.fail(&at, "APPLICATION_COMMAND_OPTIONS_DEPTH", "Too deep".into());
            }
            size += options(check, &at, &option["options"], depth + 1);
            continue;
        }
        let required = option["required"].as_bool().unwrap_or(false);
        if required && optional_seen {
            check.fail(
                &format!("{at}required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options".into(),
            );
        }
        optional_seen |= !required;
        let choices = &option["choices"];
        check.at_most(&format!("{at}choices"), choices, 25);
        if choices.as_array().is_some_and(|c| !c.is_empty())
            && option["autocomplete"].as_bool() == Some(true)
        {
            check.fail(
                &format!("{at}autocomplete"),
                "AUTOCOMPLETE_AND_CHOICES",
                "Autocomplete cannot be set with choices".into(),
            );
        }
        for (c, choice) in choices.as_array().into_iter().flatten().enumerate() {
            let cat = format!("{at}choices.{c}.");
            size += check.length(&format!("{cat}name"), &choice["name"], 1, 100);
            size += check.length(&format!("{cat}value"), &choice["value"], 1, 100);
        }
        if let Some(max) = option["max_length"].as_u64() {
            if !(1..=6000).contains(&max) {
                check.fail(
                    &format!("{at}max_length"),
                    "NUMBER_TYPE_MAX",
                    "1-6000".into(),
                );
            }
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_command_has_a_shape_discord_accepts() {
        let registered = guildkeep::bot::registration_json();
        if let Err(breaches) = commands(&registered) {
            panic!("{breaches:#?}");
        }
    }

    #[test]
    fn every_command_is_installed_to_servers_and_offered_in_servers_only() {
        let registered = guildkeep::bot::registration_json();
        for command in registered.as_array().unwrap() {
            assert_eq!(command["integration_types"], json!([0]), "{command}");
            assert_eq!(command["contexts"], json!([0]), "{command}");
        }
    }

    #[test]
    fn breaches_of_the_documented_limits_are_caught() {
        let long = "x".repeat(2001);
        assert!(message(&json!({"content": long})).is_err());
        let fields: Vec<_> = (0..26)
            .map(|_| json!({"name": "a", "value": "b"}))
            .collect();
        assert!(message(&json!({"embeds": [{"fields": fields}]})).is_err());
        let big = "x".repeat(4096);
        let embed = json!({"description": big, "title": "t", "fields": [{"name": "n", "value": "x".repeat(1024)}, {"name": "n", "value": "x".repeat(1024)}]});
        assert!(
            message(&json!({"embeds": [embed]})).is_err(),
            "over 6000 in all"
        );
        let button = |id: &str| json!({"type": 2, "style": 2, "label": "b", "custom_id": id});
        let row = json!({"type": 1, "components": [button(&"x".repeat(101))]});
        assert!(message(&json!({"components": [row]})).is_err());
        let six: Vec<_> = (0..6).map(|n| button(&n.to_string())).collect();
        let row = json!({"type": 1, "components": six});
        assert!(message(&json!({"components": [row]})).is_err());
        let choices: Vec<_> = (0..26).map(|n| json!({"name": "a", "value": n})).collect();
        assert!(callback(&json!({"type": 8, "data": {"choices": choices}})).is_err());
        let optional_first = json!([{"name": "c", "description": "d", "type": 1, "options": [
            {"name": "a", "description": "d", "type": 3},
            {"name": "b", "description": "d", "type": 3, "required": true},
        ]}]);
        assert!(commands(&optional_first).is_err());
        assert!(commands(&json!([{"name": "Caps", "description": "d", "type": 1}])).is_err());
        let body = invalid_form_body(&[Breach {
            path: "embeds.0.description".into(),
            code: "BASE_TYPE_BAD_LENGTH",
            message: "m".into(),
        }]);
        assert_eq!(
            body["errors"]["embeds"]["0"]["description"]["_errors"][0]["code"],
            "BASE_TYPE_BAD_LENGTH"
        );
    }
}
