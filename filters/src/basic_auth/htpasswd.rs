//! Apache `htpasswd` files: parsing and password verification.
//!
//! Supported hash schemes, one `user:hash` per line (`#` comments and blank lines allowed):
//!
//! | scheme                     | written by                    |
//! |----------------------------|-------------------------------|
//! | `$2y$`, `$2b$`, `$2a$`     | `htpasswd -B` (bcrypt)        |
//! | `$apr1$`                   | `htpasswd -m` (Apache MD5)    |
//! | `$1$`                      | `openssl passwd -1` (MD5-crypt) |
//! | `{SHA}`                    | `htpasswd -s` (SHA-1, base64) |
//! | `{PLAIN}`                  | nginx's explicit plain text   |
//!
//! DES crypt (`htpasswd -d`) and bare plain-text passwords (`htpasswd -p`) are refused with an
//! error naming the file and line: DES keeps only 8 characters of a password, and a bare
//! password cannot be told apart from a hash.
//!
//! ```
//! use mapproxy_serve_filters::basic_auth::htpasswd::Users;
//!
//! let users = Users::parse("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", "inline").unwrap();
//! assert!(users.verify("bob", b"secret"));
//! assert!(!users.verify("bob", b"wrong"));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// One password hash from an htpasswd line.
#[derive(Clone)]
pub enum Hash {
    /// bcrypt (`$2y$`, `$2b$`, `$2a$`): the whole hash string.
    Bcrypt(String),
    /// MD5-crypt: `$apr1$` (Apache) or `$1$` (glibc); salt and the 22-character checksum.
    Md5Crypt {
        /// `$apr1$` or `$1$`.
        magic: &'static str,
        /// Up to 8 salt characters.
        salt: String,
        /// The encoded checksum.
        checksum: String,
    },
    /// `{SHA}`: the SHA-1 digest of the password.
    Sha1([u8; 20]),
    /// `{PLAIN}`: the password itself.
    Plain(Vec<u8>),
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never print secrets
        f.write_str(match self {
            Hash::Bcrypt(_) => "Hash::Bcrypt",
            Hash::Md5Crypt { .. } => "Hash::Md5Crypt",
            Hash::Sha1(_) => "Hash::Sha1",
            Hash::Plain(_) => "Hash::Plain",
        })
    }
}

const CRYPT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Hash {
    /// Parse the hash part of an htpasswd line; the error says what is wrong and what to do.
    pub fn parse(s: &str) -> Result<Hash, String> {
        if let Some(rest) = s.strip_prefix("{PLAIN}") {
            return Ok(Hash::Plain(rest.as_bytes().to_vec()));
        }
        if let Some(rest) = s.strip_prefix("{SHA}") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "invalid {SHA} hash (not base64)".to_string())?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| "invalid {SHA} hash (not 20 bytes)".to_string())?;
            return Ok(Hash::Sha1(digest));
        }
        if s.starts_with("$2y$") || s.starts_with("$2b$") || s.starts_with("$2a$") {
            // validate the shape now so a broken line is a start-up error, not a 401
            if s.len() != 60 || s.as_bytes().get(6) != Some(&b'$') || !cost_ok(s) {
                return Err("invalid bcrypt hash (expected 60 characters like $2y$05$...)".into());
            }
            return Ok(Hash::Bcrypt(s.to_string()));
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = s.strip_prefix(magic) {
                let (salt, checksum) = rest
                    .split_once('$')
                    .ok_or_else(|| format!("invalid {magic} hash (no '$' after the salt)"))?;
                if salt.is_empty()
                    || salt.len() > 8
                    || checksum.len() != 22
                    || !checksum.bytes().all(|b| CRYPT_CHARS.contains(&b))
                {
                    return Err(format!("invalid {magic} hash"));
                }
                return Ok(Hash::Md5Crypt {
                    magic,
                    salt: salt.to_string(),
                    checksum: checksum.to_string(),
                });
            }
        }
        if s.starts_with("$5$") || s.starts_with("$6$") || s.starts_with("$y$") {
            return Err("SHA-crypt and yescrypt hashes are not supported; \
                        re-create the entry with `htpasswd -B` (bcrypt)"
                .into());
        }
        if s.len() == 13 && s.bytes().all(|b| CRYPT_CHARS.contains(&b)) {
            return Err(
                "DES crypt hashes are refused (only 8 characters of the password count); \
                        re-create the entry with `htpasswd -B` (bcrypt)"
                    .into(),
            );
        }
        Err(
            "not a supported hash (a bare password?); use `htpasswd -B` (bcrypt), \
             or write a plain-text password explicitly as {PLAIN}password"
                .into(),
        )
    }

    /// Is checking this hash expensive (worth caching and running off the async threads)?
    pub fn is_slow(&self) -> bool {
        matches!(self, Hash::Bcrypt(_) | Hash::Md5Crypt { .. })
    }

    /// Does `password` match? Comparisons are constant-time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Plain(p) => bool::from(p.as_slice().ct_eq(password)),
            Hash::Sha1(d) => {
                let got = Sha1::digest(password);
                bool::from(got.as_slice().ct_eq(d))
            }
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Md5Crypt {
                magic,
                salt,
                checksum,
            } => {
                let got = md5_crypt_checksum(password, magic.as_bytes(), salt.as_bytes());
                bool::from(got.as_slice().ct_eq(checksum.as_bytes()))
            }
        }
    }
}

fn cost_ok(s: &str) -> bool {
    bcrypt_cost(s).is_some_and(|c| (4..=31).contains(&c))
}

/// The cost of a bcrypt hash string (`$2y$NN$...`).
fn bcrypt_cost(s: &str) -> Option<u32> {
    s.get(4..6).and_then(|c| c.parse::<u32>().ok())
}

/// The MD5-crypt checksum (22 characters) of Poul-Henning Kamp's algorithm, as used by
/// `$1$` (glibc) and Apache's `$apr1$` (which differs only in the magic string).
fn md5_crypt_checksum(pw: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 22] {
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic);
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();

    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize().into();
    }

    let mut out = [0u8; 22];
    let mut pos = 0;
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out[pos] = CRYPT_CHARS[(v & 0x3f) as usize];
            pos += 1;
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    put(u32::from(fin[11]), 2);
    out
}

/// An error in an htpasswd file: `path:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtpasswdError {
    /// The file (or a label for inline text).
    pub path: PathBuf,
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for HtpasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.path.display(), self.message)
        }
    }
}

impl std::error::Error for HtpasswdError {}

/// The users of an htpasswd file (the first line for a user wins, as in Apache).
#[derive(Clone, Debug, Default)]
pub struct Users {
    map: HashMap<String, Hash>,
}

impl Users {
    /// No users.
    pub fn new() -> Self {
        Users::default()
    }

    /// Parse htpasswd text; `path` names it in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Users, HtpasswdError> {
        let mut users = Users::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| HtpasswdError {
                path: path.as_ref().to_path_buf(),
                line: i + 1,
                message,
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| err("expected 'user:hash'".to_string()))?;
            if user.is_empty() {
                return Err(err("empty user name".to_string()));
            }
            // nginx allows a trailing ":comment" field; Apache hashes contain no ':'
            let hash = hash.split(':').next().unwrap_or("");
            let hash = Hash::parse(hash).map_err(|m| err(format!("user '{user}': {m}")))?;
            users.map.entry(user.to_string()).or_insert(hash);
        }
        Ok(users)
    }

    /// Read and parse an htpasswd file.
    pub fn load(path: &Path) -> Result<Users, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|e| HtpasswdError {
            path: path.to_path_buf(),
            line: 0,
            message: format!("cannot read htpasswd file: {e}"),
        })?;
        Users::parse(&text, path)
    }

    /// Plain `user:password` pairs separated by whitespace or newlines (for tests and demos).
    pub fn from_plain_pairs(text: &str) -> Result<Users, String> {
        let mut users = Users::new();
        for pair in text.split_whitespace() {
            let (u, p) = pair
                .split_once(':')
                .ok_or_else(|| format!("expected 'user:password', found '{pair}'"))?;
            if u.is_empty() {
                return Err(format!("empty user name in '{pair}'"));
            }
            users
                .map
                .entry(u.to_string())
                .or_insert_with(|| Hash::Plain(p.as_bytes().to_vec()));
        }
        Ok(users)
    }

    /// Add one user (replacing an earlier entry).
    pub fn insert(&mut self, user: impl Into<String>, hash: Hash) {
        self.map.insert(user.into(), hash);
    }

    /// The hash of `user`.
    pub fn get(&self, user: &str) -> Option<&Hash> {
        self.map.get(user)
    }

    /// Does `user` exist and `password` match?
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        self.get(user).is_some_and(|h| h.verify(password))
    }

    /// The entry most like the others, to check an unknown user's password against so that
    /// an unknown user costs what a known one does: a bcrypt hash of the most common cost
    /// (of two equally common costs, the higher) when there are bcrypt entries, else an
    /// MD5-crypt, `{SHA}` or `{PLAIN}` one, in that order. `None` without users.
    pub fn typical(&self) -> Option<&Hash> {
        let mut bcrypt: HashMap<u32, (usize, &Hash)> = HashMap::new();
        let mut other: Option<&Hash> = None;
        let rank = |h: &Hash| match h {
            Hash::Bcrypt(_) => 4,
            Hash::Md5Crypt { .. } => 3,
            Hash::Sha1(_) => 2,
            Hash::Plain(_) => 1,
        };
        for h in self.map.values() {
            match h {
                Hash::Bcrypt(s) => {
                    let cost = bcrypt_cost(s).unwrap_or(0);
                    bcrypt.entry(cost).or_insert((0, h)).0 += 1;
                }
                _ if other.is_none_or(|o| rank(h) > rank(o)) => other = Some(h),
                _ => {}
            }
        }
        bcrypt
            .into_iter()
            .max_by_key(|&(cost, (n, _))| (n, cost))
            .map(|(_, (_, h))| h)
            .or(other)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // generated with `htpasswd -nb{B,s,m}` and `openssl passwd -{apr1,1} -salt abcdefgh`
    const FILE: &str = "\
# users
alice:$2y$05$hB/j7d8LOr.e1c/ow61zFOT4ybNSLe2oWhFQ8t2W5coBHnGfmijG2

bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\r
dave:$apr1$MvGLl1AV$MEHgkm3R4VHTlhjpUOnBh/
erin:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/
fred:$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1
gina:{PLAIN}secret
";

    #[test]
    fn every_scheme_verifies() {
        let u = Users::parse(FILE, "htpasswd").unwrap();
        assert_eq!(u.len(), 6);
        for user in ["alice", "bob", "dave", "erin", "fred", "gina"] {
            assert!(u.verify(user, b"secret"), "{user}");
            assert!(!u.verify(user, b"secreT"), "{user}");
            assert!(!u.verify(user, b""), "{user}");
        }
        assert!(!u.verify("nobody", b"secret"));
        assert!(u.get("alice").unwrap().is_slow());
        assert!(!u.get("bob").unwrap().is_slow());
    }

    #[test]
    fn des_and_bare_passwords_are_refused_with_file_and_line() {
        let e = Users::parse("# x\nbob:{PLAIN}x\ncarol:vTgIitjl/y/fM\n", "/etc/pw").unwrap_err();
        assert_eq!(e.line, 3);
        let s = e.to_string();
        assert!(s.starts_with("/etc/pw:3: user 'carol': DES crypt"), "{s}");
        let e = Users::parse("erin:secret\n", "pw").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("pw:1: user 'erin': not a supported hash"));
        assert!(e.to_string().contains("{PLAIN}"));
        let e = Users::parse("nocolon\n", "pw").unwrap_err();
        assert_eq!(e.to_string(), "pw:1: expected 'user:hash'");
        let e = Users::parse("x:$6$abc$def\n", "pw").unwrap_err();
        assert!(e.message.contains("not supported"));
        let e = Users::parse("x:$2y$05$short\n", "pw").unwrap_err();
        assert!(e.message.contains("bcrypt"));
        let e = Users::parse("x:{SHA}!!!\n", "pw").unwrap_err();
        assert!(e.message.contains("base64"));
    }

    #[test]
    fn first_entry_wins_and_plain_pairs() {
        let u = Users::parse("a:{PLAIN}one\na:{PLAIN}two\n", "pw").unwrap();
        assert!(u.verify("a", b"one"));
        assert!(!u.verify("a", b"two"));
        let u = Users::from_plain_pairs("a:1 b:2:3\n c:").unwrap();
        assert!(u.verify("a", b"1"));
        assert!(u.verify("b", b"2:3"));
        assert!(u.verify("c", b""));
        assert!(Users::from_plain_pairs("nopass").is_err());
        assert!(Users::from_plain_pairs(":x").is_err());
    }

    #[test]
    fn typical_entry_is_bcrypt_of_the_most_common_cost() {
        let cost = |u: &Users| match u.typical() {
            Some(Hash::Bcrypt(s)) => bcrypt_cost(s),
            _ => None,
        };
        let b4 = bcrypt::hash("x", 4).unwrap();
        let b5 = bcrypt::hash("y", 5).unwrap();
        let b5b = bcrypt::hash("z", 5).unwrap();
        let text = format!("a:{b4}\nb:{b5}\nc:{b5b}\nd:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
        assert_eq!(cost(&Users::parse(&text, "pw").unwrap()), Some(5));
        // equally common: the higher cost
        let text = format!("a:{b4}\nb:{b5}\ne:{{PLAIN}}p\n");
        assert_eq!(cost(&Users::parse(&text, "pw").unwrap()), Some(5));
        let text = format!("a:{b4}\nb:{b4}\nc:{b5}\n");
        assert_eq!(cost(&Users::parse(&text, "pw").unwrap()), Some(4));
        // no bcrypt: MD5-crypt before {SHA} before {PLAIN}
        let u = Users::parse(
            FILE.lines().skip(2).collect::<Vec<_>>().join("\n").as_str(),
            "pw",
        )
        .unwrap();
        assert!(matches!(u.typical(), Some(Hash::Md5Crypt { .. })));
        let u = Users::parse("g:{PLAIN}x\nb:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", "pw").unwrap();
        assert!(matches!(u.typical(), Some(Hash::Sha1(_))));
        let u = Users::parse("g:{PLAIN}x\n", "pw").unwrap();
        assert!(matches!(u.typical(), Some(Hash::Plain(_))));
        assert!(Users::new().typical().is_none());
    }

    #[test]
    fn debug_hides_secrets() {
        let u = Users::parse("gina:{PLAIN}secret\n", "pw").unwrap();
        assert!(!format!("{u:?}").contains("secret"));
    }
}
