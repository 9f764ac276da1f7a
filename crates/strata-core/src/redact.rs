//! Store URLs in messages: the one rule for leaving credentials out.
//!
//! Owns [`redact_url`]; every message, log line, commit message and health reason
//! that names a store goes through it.

/// A URL without its password, for messages and backup commits: `user:password@`
/// becomes `user@` (the user name says who connects, which helps more than it
/// reveals), and `password=` / `sslpassword=` parameters are removed.
pub fn redact_url(url: &str) -> String {
    // The query starts after the credentials (a password may hold a raw `?`).
    let from = url.rfind('@').unwrap_or(0);
    let (base, query) = match url[from..].find('?') {
        Some(q) => (&url[..from + q], Some(&url[from + q + 1..])),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = base[scheme + 3..at].split(':').next().unwrap_or_default();
            let user = if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            };
            format!("{}{user}{}", &base[..scheme + 3], &base[at + 1..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                !name.to_ascii_lowercase().contains("password")
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_left_out() {
        assert_eq!(redact_url("etcd://root:pw@h:2379"), "etcd://root@h:2379");
        assert_eq!(
            redact_url("postgres://u:p?w@db/meta?sslmode=require&password=x"),
            "postgres://u@db/meta?sslmode=require"
        );
        assert_eq!(redact_url("postgres://:pw@db/meta"), "postgres://db/meta");
        assert_eq!(redact_url("sqlite:./strata.db"), "sqlite:./strata.db");
    }
}
