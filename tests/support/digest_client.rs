//! A Digest client of the tests' own (RFC 7616), independent of the crate's code: reads a
//! challenge and computes `Proxy-Authorization`/`Authorization` values. Shared by the tests
//! (through `support`) and the benches (by path).

/// The auth-params of one challenge (`Digest realm="x", nonce="y", algorithm=MD5`), read by a
/// parser of the tests' own: quoted values unescaped, names lowercased.
pub fn challenge_params(challenge: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

/// `H(a ":" b ...)` in lowercase hex for a Digest algorithm name (`-sess` ignored here).
pub fn digest_hex(algorithm: &str, parts: &[&[u8]]) -> String {
    use sha2::Digest as _;
    let joined = parts.join(&b':');
    let bytes: Vec<u8> = match algorithm
        .trim_end_matches("-sess")
        .to_ascii_uppercase()
        .as_str()
    {
        "MD5" => md5::Md5::digest(&joined).to_vec(),
        "SHA-256" => sha2::Sha256::digest(&joined).to_vec(),
        "SHA-512-256" => sha2::Sha512_256::digest(&joined).to_vec(),
        other => panic!("unknown algorithm {other}"),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One Digest `Proxy-Authorization`/`Authorization` value for `challenge`.
pub struct DigestAnswer<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nc: u32,
    pub cnonce: &'a str,
}

impl DigestAnswer<'_> {
    /// The credentials, and the `rspauth` the server should send back.
    pub fn credentials(&self, challenge: &str) -> (String, String) {
        let p = challenge_params(challenge);
        let algorithm = p.get("algorithm").cloned().unwrap_or_else(|| "MD5".into());
        let (realm, nonce) = (&p["realm"], &p["nonce"]);
        let nc = format!("{:08x}", self.nc);
        let mut ha1 = digest_hex(
            &algorithm,
            &[
                self.user.as_bytes(),
                realm.as_bytes(),
                self.password.as_bytes(),
            ],
        );
        if algorithm.to_ascii_lowercase().ends_with("-sess") {
            ha1 = digest_hex(
                &algorithm,
                &[ha1.as_bytes(), nonce.as_bytes(), self.cnonce.as_bytes()],
            );
        }
        let response = |method: &str| {
            let ha2 = digest_hex(&algorithm, &[method.as_bytes(), self.uri.as_bytes()]);
            digest_hex(
                &algorithm,
                &[
                    ha1.as_bytes(),
                    nonce.as_bytes(),
                    nc.as_bytes(),
                    self.cnonce.as_bytes(),
                    b"auth",
                    ha2.as_bytes(),
                ],
            )
        };
        let value = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", \
             algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{}\", response=\"{}\"",
            self.user,
            self.uri,
            self.cnonce,
            response(self.method)
        );
        (value, response(""))
    }
}
