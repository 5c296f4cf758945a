//! Credentials and region as boto3 (botocore) finds them for MapProxy's `profile_name`:
//!
//! 1. without an explicit profile, the environment: `AWS_ACCESS_KEY_ID`,
//!    `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (or `AWS_SECURITY_TOKEN`); an explicit
//!    `profile_name` skips them, as botocore does;
//! 2. the profile (`profile_name`, else `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, `default`) in the
//!    shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`,
//!    section `[name]`), then in the config file (`AWS_CONFIG_FILE`, default `~/.aws/config`,
//!    section `[profile name]`, or `[default]`): `aws_access_key_id`,
//!    `aws_secret_access_key`, `aws_session_token`; the config file's `region` too.
//!
//! A profile named explicitly (or by `AWS_PROFILE`) that neither file has is an error, as
//! botocore's ProfileNotFound. No credentials at all: requests go unsigned (a public bucket).
//! Instance and container metadata, SSO and assume-role profiles are not read.
//!
//! Both files are ini files that botocore reads with Python's ConfigParser: they are read
//! with the project's ConfigParser-compatible reader (`core::ini`), not a second ini parser.

use std::path::{Path, PathBuf};

use mapproxy_serve_core::ini::{IniFile, Section};
use rusty_s3::Credentials;

/// What was found.
#[derive(Debug, Default)]
pub struct Found {
    pub credentials: Option<Credentials>,
    /// The profile's `region` (config file).
    pub region: Option<String>,
}

fn value(section: &Section, key: &str) -> Option<String> {
    section
        .get_ignore_ascii_case(key)
        .map(|e| e.value.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn keys_of(section: &Section) -> Option<Credentials> {
    let key = value(section, "aws_access_key_id")?;
    let secret = value(section, "aws_secret_access_key")?;
    Some(
        match value(section, "aws_session_token").or_else(|| value(section, "aws_security_token")) {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        },
    )
}

fn read(path: &Path) -> Result<Option<IniFile>, String> {
    if !path.exists() {
        return Ok(None);
    }
    IniFile::read(path).map(Some).map_err(|e| e.to_string())
}

/// Resolves credentials for `profile_name` with the environment read through `env` (a
/// variable that is unset or blank is `None`).
pub fn resolve(
    profile_name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Found, String> {
    let explicit = profile_name.map(str::to_string);
    let from_env_profile = env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE"));
    let must_exist = explicit.is_some() || from_env_profile.is_some();
    let profile = explicit
        .clone()
        .or(from_env_profile)
        .unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let aws_file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let creds_file = match aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
        Some(p) => read(&p)?,
        None => None,
    };
    let config_file = match aws_file("AWS_CONFIG_FILE", "config") {
        Some(p) => read(&p)?,
        None => None,
    };
    let in_creds = creds_file.as_ref().and_then(|f| f.section(&profile));
    let in_config = config_file.as_ref().and_then(|f| {
        f.section(&format!("profile {profile}")).or_else(|| {
            if profile == "default" {
                f.section("default")
            } else {
                None
            }
        })
    });
    if must_exist && in_creds.is_none() && in_config.is_none() {
        return Err(format!("The config profile ({profile}) could not be found"));
    }
    let region = in_config.and_then(|s| value(s, "region"));
    let from_env = if explicit.is_none() {
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) => Some(
                match env("AWS_SESSION_TOKEN").or_else(|| env("AWS_SECURITY_TOKEN")) {
                    Some(t) => Credentials::new_with_token(k, s, t),
                    None => Credentials::new(k, s),
                },
            ),
            _ => None,
        }
    } else {
        None
    };
    let credentials = from_env
        .or_else(|| in_creds.and_then(keys_of))
        .or_else(|| in_config.and_then(keys_of));
    Ok(Found {
        credentials,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_profiles_and_precedence() {
        let dir = std::env::temp_dir().join(format!("s3-creds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n\
             [tiles]\naws_access_key_id=TILES\naws_secret_access_key=tsecret\naws_session_token=tok\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile other]\nregion = us-west-2\n\
             aws_access_key_id = OTHER\naws_secret_access_key = osecret\n",
        )
        .unwrap();
        let home = ("HOME", dir.display().to_string());
        // the default profile, with the config file's region
        let f = resolve(None, &env_of(std::slice::from_ref(&home))).unwrap();
        assert_eq!(f.credentials.as_ref().unwrap().key(), "DEF");
        assert_eq!(f.region.as_deref(), Some("eu-west-1"));
        // the environment wins over the default profile...
        let keys = [
            ("AWS_ACCESS_KEY_ID", "ENV".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "envsecret".to_string()),
        ];
        let mut vars = vec![home.clone()];
        vars.extend(keys.iter().cloned());
        let f = resolve(None, &env_of(&vars)).unwrap();
        assert_eq!(f.credentials.as_ref().unwrap().key(), "ENV");
        // ...but not over an explicit profile_name (botocore)
        let f = resolve(Some("tiles"), &env_of(&vars)).unwrap();
        let c = f.credentials.unwrap();
        assert_eq!((c.key(), c.token()), ("TILES", Some("tok")));
        // AWS_PROFILE; a profile only in the config file
        let f = resolve(
            None,
            &env_of(&[home.clone(), ("AWS_PROFILE", "other".into())]),
        )
        .unwrap();
        assert_eq!(f.credentials.unwrap().key(), "OTHER");
        assert_eq!(f.region.as_deref(), Some("us-west-2"));
        // a named profile that does not exist
        let e = resolve(Some("nope"), &env_of(std::slice::from_ref(&home))).unwrap_err();
        assert!(e.contains("(nope) could not be found"), "{e}");
        // no files, no variables: unsigned
        let f = resolve(None, &env_of(&[("HOME", "/nonexistent".into())])).unwrap();
        assert!(f.credentials.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
