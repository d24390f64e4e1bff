//! The image config (image-spec `config.md`): the new image's config is the base's,
//! kept as JSON so that fields envbuild does not know survive, with the build time,
//! environment, process settings, labels, `rootfs.diff_ids` and history updated.

use serde_json::{Map, Value, json};

use super::assemble::{ImageSettings, NewLayer};
use super::layout::BaseImage;
use crate::repro::SourceDateEpoch;

/// PATH of an image whose config sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build the new config from the base's. The error is the reason the base config
/// cannot be extended.
pub(crate) fn assemble_config(
    base: &BaseImage,
    layers: &[NewLayer],
    settings: &ImageSettings,
    epoch: SourceDateEpoch,
) -> Result<Value, String> {
    let Value::Object(mut config) = base.config.clone() else {
        return Err("it is not a JSON object".to_string());
    };
    let created = epoch.rfc3339();
    config.insert("created".to_string(), Value::String(created.clone()));
    // A config read from a base always has these; keep them in step with the platform
    // the image is published under if a producer left them out.
    let platform = &base.platform;
    config
        .entry("os")
        .or_insert_with(|| Value::String(platform.os.clone()));
    config
        .entry("architecture")
        .or_insert_with(|| Value::String(platform.architecture.clone()));
    if let Some(variant) = &platform.variant {
        config
            .entry("variant")
            .or_insert_with(|| Value::String(variant.clone()));
    }

    let process = object_entry(&mut config, "config")?;
    let base_env = string_list(process.get("Env"), "config.Env")?;
    let env = merge_env(&base_env, &settings.venv, &settings.env);
    process.insert("Env".to_string(), json!(env));
    if settings.entrypoint.is_none() && settings.cmd.is_none() {
        point_at_venv_python(process, &settings.venv);
    }
    if let Some(entrypoint) = &settings.entrypoint {
        process.insert("Entrypoint".to_string(), json!(entrypoint));
        // As Docker does: a new entrypoint drops the base's Cmd, which was written as
        // arguments for the base's entrypoint.
        if settings.cmd.is_none() {
            process.remove("Cmd");
        }
    }
    if let Some(cmd) = &settings.cmd {
        process.insert("Cmd".to_string(), json!(cmd));
    }
    if let Some(workdir) = &settings.workdir {
        process.insert("WorkingDir".to_string(), json!(workdir));
    }
    if let Some(user) = &settings.user {
        process.insert("User".to_string(), json!(user));
    }
    if !settings.labels.is_empty() {
        let labels = object_entry(process, "Labels")?;
        for (key, value) in &settings.labels {
            labels.insert(key.clone(), json!(value));
        }
    }

    let diff_ids: Vec<String> = base
        .diff_ids
        .iter()
        .chain(layers.iter().map(|layer| &layer.diff_id))
        .map(|id| id.oci())
        .collect();
    config.insert(
        "rootfs".to_string(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );

    let mut history = match config.remove("history") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("its `history` is not a list".to_string()),
    };
    // Standards §0 rule 9: non-empty history entries correspond 1:1 to layers. When the
    // base has fewer than it has layers, pad so that envbuild's entries line up.
    let non_empty = history
        .iter()
        .filter(|entry| entry.get("empty_layer") != Some(&Value::Bool(true)))
        .count();
    for _ in non_empty..base.diff_ids.len() {
        history.push(
            json!({ "comment": "envbuild: placeholder for a base layer without a history entry" }),
        );
    }
    let comment = format!("envbuild {}", env!("CARGO_PKG_VERSION"));
    for layer in layers {
        history.push(
            json!({ "created": created, "created_by": layer.created_by, "comment": comment }),
        );
    }
    config.insert("history".to_string(), Value::Array(history));
    Ok(Value::Object(config))
}

/// The object under `key`, created when absent or `null`.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let value = map.entry(key).or_insert(Value::Null);
    if value.is_null() {
        *value = Value::Object(Map::new());
    }
    value
        .as_object_mut()
        .ok_or_else(|| format!("its `{key}` is not an object"))
}

/// A list of strings, or empty when absent or `null`.
fn string_list(value: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("its `{key}` holds a value that is not a string"))
            })
            .collect(),
        Some(_) => Err(format!("its `{key}` is not a list")),
    }
}

/// An environment in `KEY=VALUE` form with a stable order: setting a key replaces its
/// first occurrence in place and drops later ones; a new key is appended.
struct Environment(Vec<(String, Option<String>)>);

impl Environment {
    /// Read a config's `Env`; of repeated keys the later value wins, at the first
    /// position. Entries without `=` are kept as they are.
    fn parse(entries: &[String]) -> Self {
        let mut environment = Self(Vec::new());
        for entry in entries {
            match entry.split_once('=') {
                Some((key, value)) => environment.set(key, value),
                None if !environment
                    .0
                    .iter()
                    .any(|(key, value)| key == entry && value.is_none()) =>
                {
                    environment.0.push((entry.clone(), None));
                }
                None => {}
            }
        }
        environment
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| name == key && value.is_some())
            .and_then(|(_, value)| value.as_deref())
    }

    fn set(&mut self, key: &str, value: &str) {
        let mut found = false;
        self.0.retain_mut(|(name, old)| {
            if name != key || old.is_none() {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            *old = Some(value.to_string());
            true
        });
        if !found {
            self.0.push((key.to_string(), Some(value.to_string())));
        }
    }

    fn render(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(key, value)| match value {
                Some(value) => format!("{key}={value}"),
                None => key.clone(),
            })
            .collect()
    }
}

/// A base `Entrypoint` or `Cmd` that starts the base's own Python by its absolute path
/// (`/usr/local/bin/python3`) would run without the installed packages: it is pointed at
/// the venv's `python`, keeping its arguments. A bare `python3` already finds the venv's
/// first on `PATH`; `--entrypoint`/`--cmd` win over both.
fn point_at_venv_python(process: &mut serde_json::Map<String, Value>, venv: &str) {
    let venv_python = format!("{}/bin/python", venv.trim_end_matches('/'));
    // Only the first of Entrypoint and Cmd runs a program.
    let has_entrypoint =
        matches!(process.get("Entrypoint"), Some(Value::Array(items)) if !items.is_empty());
    let key = if has_entrypoint { "Entrypoint" } else { "Cmd" };
    let Some(Value::Array(items)) = process.get_mut(key) else {
        return;
    };
    let Some(Value::String(first)) = items.first_mut() else {
        return;
    };
    let Some((folder, name)) = first.rsplit_once('/') else {
        return;
    };
    let Some(version) = name.strip_prefix("python") else {
        return;
    };
    let is_python = version.split('.').count() <= 2
        && version
            .split('.')
            .all(|part| part.bytes().all(|byte| byte.is_ascii_digit()));
    if is_python && !folder.is_empty() && !first.starts_with(&format!("{venv}/")) {
        *first = venv_python;
    }
}

/// The new image's `Env`: the base's, with the venv's `bin` first on PATH (once),
/// `VIRTUAL_ENV`, then the settings' variables, later ones winning.
fn merge_env(base: &[String], venv: &str, settings: &[(String, String)]) -> Vec<String> {
    let mut environment = Environment::parse(base);
    let venv = match venv.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let venv_bin = format!("{venv}/bin");
    let base_path = environment.get("PATH").unwrap_or(DEFAULT_PATH);
    // Empty components would put the working folder on PATH; drop them with any
    // earlier copy of the venv's `bin`.
    let path: Vec<&str> = std::iter::once(venv_bin.as_str())
        .chain(
            base_path
                .split(':')
                .filter(|component| !component.is_empty() && *component != venv_bin),
        )
        .collect();
    environment.set("PATH", &path.join(":"));
    environment.set("VIRTUAL_ENV", venv);
    for (key, value) in settings {
        environment.set(key, value);
    }
    environment.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn ok_base_python_by_path_becomes_the_venv_python() {
        let run = |entrypoint: Value, cmd: Value| {
            let mut process = serde_json::Map::new();
            if !entrypoint.is_null() {
                process.insert("Entrypoint".into(), entrypoint);
            }
            process.insert("Cmd".into(), cmd);
            point_at_venv_python(&mut process, "/opt/venv");
            (process.get("Entrypoint").cloned(), process["Cmd"].clone())
        };
        assert_eq!(
            run(Value::Null, json!(["/usr/local/bin/python3", "-i"])).1,
            json!(["/opt/venv/bin/python", "-i"])
        );
        assert_eq!(
            run(Value::Null, json!(["/usr/bin/python3.11"])).1,
            json!(["/opt/venv/bin/python"])
        );
        // A bare name finds the venv on PATH; other programs are kept.
        assert_eq!(run(Value::Null, json!(["python3"])).1, json!(["python3"]));
        assert_eq!(
            run(Value::Null, json!(["/bin/bash"])).1,
            json!(["/bin/bash"])
        );
        assert_eq!(
            run(Value::Null, json!(["/usr/bin/python3-config"])).1,
            json!(["/usr/bin/python3-config"])
        );
        // The entrypoint runs; the Cmd is its arguments.
        let (entrypoint, cmd) = run(json!(["/usr/bin/python3"]), json!(["/usr/bin/python3"]));
        assert_eq!(entrypoint, Some(json!(["/opt/venv/bin/python"])));
        assert_eq!(cmd, json!(["/usr/bin/python3"]));
    }

    #[test]
    fn ok_path_default_and_prefixed() {
        assert_eq!(
            merge_env(&[], "/opt/venv", &[]),
            strings(&[
                &format!("PATH=/opt/venv/bin:{DEFAULT_PATH}"),
                "VIRTUAL_ENV=/opt/venv"
            ])
        );
        assert_eq!(
            merge_env(
                &strings(&["LANG=C.UTF-8", "PATH=/usr/bin:/bin"]),
                "/opt/venv/",
                &[]
            ),
            strings(&[
                "LANG=C.UTF-8",
                "PATH=/opt/venv/bin:/usr/bin:/bin",
                "VIRTUAL_ENV=/opt/venv"
            ])
        );
    }

    #[test]
    fn ok_venv_not_duplicated_on_path() {
        let base = strings(&["PATH=/opt/venv/bin:/usr/bin", "VIRTUAL_ENV=/opt/venv"]);
        assert_eq!(merge_env(&base, "/opt/venv", &[]), base);
        let base = strings(&["PATH=/usr/bin:/opt/venv/bin::/bin"]);
        assert_eq!(
            merge_env(&base, "/opt/venv", &[]),
            strings(&["PATH=/opt/venv/bin:/usr/bin:/bin", "VIRTUAL_ENV=/opt/venv"])
        );
    }

    #[test]
    fn ok_env_order_is_stable_and_later_wins() {
        let base = strings(&["A=1", "PATH=/bin", "B=2", "A=3", "NOVALUE"]);
        let settings = vec![
            ("B".to_string(), "20".to_string()),
            ("C".to_string(), "30".to_string()),
            ("C".to_string(), "31".to_string()),
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ];
        assert_eq!(
            merge_env(&base, "/opt/venv", &settings),
            strings(&[
                "A=3",
                "PATH=/opt/venv/bin:/bin",
                "B=20",
                "NOVALUE",
                "VIRTUAL_ENV=/opt/venv",
                "C=31",
                "PYTHONUNBUFFERED=1"
            ])
        );
    }

    #[test]
    fn ok_settings_may_override_path() {
        let settings = vec![("PATH".to_string(), "/custom".to_string())];
        assert_eq!(
            merge_env(&[], "/opt/venv", &settings),
            strings(&["PATH=/custom", "VIRTUAL_ENV=/opt/venv"])
        );
    }
}
