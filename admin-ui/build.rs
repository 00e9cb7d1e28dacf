//! Turns `locales/{en,ko}.json` into the `i18n` module (`t!`, `t_string!`, `Locale`): every key
//! a page names is checked at compile time, and a key one language lacks fails the build.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use leptos_i18n_parser::parse_locales::options::{Config, ParseOptions};

const LOCALES: [&str; 2] = ["en", "ko"];

fn main() {
    if let Err(error) = generate() {
        // A build script fails with `cargo::error`, which cargo shows as the build's error.
        println!("cargo::error=admin-ui translations: {error}");
    }
}

fn generate() -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    same_keys()?;
    // `interpolate_display`: strings with values (`{{ name }}`) can also be made as text, for
    // attributes and messages, not only as views.
    let config = Config::new(LOCALES[0])
        .and_then(|config| config.add_locale(LOCALES[1]))
        .map_err(|e| e.to_string())?
        .parse_options(ParseOptions::default().interpolate_display(true));
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let parsed = leptos_i18n_parser::parse_locales::parse_locales(Some(manifest), config)
        .map_err(|e| e.to_string())?;
    for file in parsed.tracked_files.iter().flatten() {
        println!("cargo::rerun-if-changed={file}");
    }
    if let Some(error) = parsed.diag.errors().first() {
        return Err(error.to_string());
    }
    let code = leptos_i18n_codegen::gen_code(&parsed, None, false, None, false)
        .map_err(|e| e.to_string())?;
    let dir = out.join("i18n");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("mod.rs"), code.to_string()).map_err(|e| e.to_string())
}

/// Every language has every key (leptos_i18n would only warn and show English).
fn same_keys() -> Result<(), String> {
    let keys = LOCALES
        .iter()
        .map(|locale| keys_of(&Path::new("locales").join(format!("{locale}.json"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut problems = Vec::new();
    for (i, locale) in LOCALES.iter().enumerate() {
        for (j, other) in LOCALES.iter().enumerate() {
            for key in keys[j].difference(&keys[i]) {
                if i != j {
                    problems.push(format!("{locale}.json lacks \"{key}\" (in {other}.json)"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "every language must have every key:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The dotted paths of a translation file's strings: `links.title`.
fn keys_of(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut keys = BTreeSet::new();
    collect(&value, String::new(), &mut keys);
    Ok(keys)
}

fn collect(value: &serde_json::Value, prefix: String, keys: &mut BTreeSet<String>) {
    match value.as_object() {
        Some(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                collect(value, path, keys);
            }
        }
        None => {
            keys.insert(prefix);
        }
    }
}
