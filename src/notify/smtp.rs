//! A small SMTP submission client (RFC 5321 with STARTTLS and AUTH PLAIN): one message per
//! conversation. Credentials are sent only over TLS; addresses were checked by the config
//! loader (no spaces, angle brackets or line breaks) so they cannot forge commands.

use base64::Engine as _;

use super::SendError;
use super::net::Conn;
use super::outbox::Timeouts;
use crate::config::files::{EmailTarget, SmtpTls};
use crate::secrets::Credentials;

/// A reply: its code and its lines' text.
struct Reply {
    code: u16,
    text: String,
}

fn reply(c: &mut Conn) -> Result<Reply, SendError> {
    let mut text = String::new();
    loop {
        let Some(line) = c.line()? else {
            return Err(SendError::Refused {
                addr: c.addr.clone(),
                what: "the conversation".into(),
                reply: "closed the connection".into(),
            });
        };
        let code = line
            .get(..3)
            .and_then(|d| d.parse::<u16>().ok())
            .ok_or_else(|| SendError::Refused {
                addr: c.addr.clone(),
                what: "the conversation".into(),
                reply: format!("not an SMTP reply: {}", super::truncate(&line, 200)),
            })?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line.get(4..).unwrap_or_default());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code, text });
        }
    }
}

/// Sends `command` (logged as `what`, never with a credential) and expects a reply in `ok`.
fn command(c: &mut Conn, command: &str, what: &str, ok: &[u16]) -> Result<Reply, SendError> {
    c.send(command)?;
    expect(c, what, ok)
}

fn expect(c: &mut Conn, what: &str, ok: &[u16]) -> Result<Reply, SendError> {
    let r = reply(c)?;
    if ok.contains(&r.code) {
        Ok(r)
    } else {
        Err(SendError::Refused {
            addr: c.addr.clone(),
            what: what.to_owned(),
            reply: format!(
                "{} {}",
                r.code,
                super::truncate(&super::one_line(&r.text), 300)
            ),
        })
    }
}

/// A header value: ASCII as it is, anything else as an RFC 2047 encoded word.
fn header_value(text: &str) -> String {
    let text = super::one_line(text);
    if text.is_ascii() {
        text
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

/// The message as sent after `DATA`: headers, body with CRLF line ends and leading dots
/// doubled, and the final `.`.
pub(super) fn message(t: &EmailTarget, subject: &str, body: &str, id: &str) -> Vec<u8> {
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000");
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", t.from));
    m.push_str(&format!("To: {}\r\n", t.to.join(", ")));
    m.push_str(&format!("Subject: {}\r\n", header_value(subject)));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <{id}@seakeeper>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n");
    m.push_str("Auto-Submitted: auto-generated\r\n\r\n");
    for line in body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m.into_bytes()
}

/// Sends one email.
pub(super) fn send(
    t: &EmailTarget,
    account: Option<&Credentials>,
    subject: &str,
    body: &str,
    id: &str,
    timeouts: Timeouts,
) -> Result<(), SendError> {
    if account.is_some() && t.tls == SmtpTls::None {
        return Err(SendError::Setup(
            "refusing to send the SMTP password without TLS: set `tls: starttls` or `implicit`"
                .into(),
        ));
    }
    let port = t.port.unwrap_or(match t.tls {
        SmtpTls::Implicit => 465,
        _ => 587,
    });
    let mut c = Conn::connect(&t.server, port, timeouts.io, timeouts.total)?;
    if t.tls == SmtpTls::Implicit {
        c = c.start_tls(t.ca_cert.as_deref())?;
    }
    expect(&mut c, "the greeting", &[220])?;
    let ehlo = "EHLO seakeeper.invalid";
    let mut hello = command(&mut c, ehlo, "EHLO", &[250])?;
    if t.tls == SmtpTls::Starttls {
        let offers = hello
            .text
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("STARTTLS"));
        if !offers {
            return Err(SendError::Refused {
                addr: c.addr.clone(),
                what: "STARTTLS".into(),
                reply: "the server does not offer it".into(),
            });
        }
        command(&mut c, "STARTTLS", "STARTTLS", &[220])?;
        c = c.start_tls(t.ca_cert.as_deref())?;
        hello = command(&mut c, ehlo, "EHLO", &[250])?;
    }
    if let Some(a) = account {
        let offers_plain = hello.text.lines().any(|l| {
            let l = l.to_ascii_uppercase();
            l.starts_with("AUTH") && l.split_whitespace().any(|m| m == "PLAIN")
        });
        if !offers_plain {
            return Err(SendError::Refused {
                addr: c.addr.clone(),
                what: "AUTH PLAIN".into(),
                reply: "the server does not offer it".into(),
            });
        }
        let raw = format!("\0{}\0{}", a.username, a.password());
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        command(&mut c, &format!("AUTH PLAIN {b64}"), "AUTH PLAIN", &[235])?;
    }
    command(
        &mut c,
        &format!("MAIL FROM:<{}>", t.from),
        "MAIL FROM",
        &[250],
    )?;
    for to in &t.to {
        command(
            &mut c,
            &format!("RCPT TO:<{to}>"),
            &format!("RCPT TO {to}"),
            &[250, 251],
        )?;
    }
    command(&mut c, "DATA", "DATA", &[354])?;
    c.write_raw(&message(t, subject, body, id))?;
    expect(&mut c, "the message", &[250])?;
    // The message is accepted; a failed QUIT changes nothing.
    let _ = command(&mut c, "QUIT", "QUIT", &[221]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::files::{EmailTarget, SmtpTls};

    #[test]
    fn bodies_are_dot_stuffed_with_crlf_and_non_ascii_subjects_encoded() {
        let t = EmailTarget {
            server: "smtp.example.org".into(),
            port: None,
            tls: SmtpTls::Starttls,
            ca_cert: None,
            from: "ci@example.org".into(),
            to: vec!["a@example.org".into(), "b@example.org".into()],
        };
        let m = String::from_utf8(super::message(&t, "Grüße\nBcc: x", "one\n.two\n", "k")).unwrap();
        assert!(m.contains("To: a@example.org, b@example.org\r\n"), "{m}");
        assert!(m.contains("Subject: =?utf-8?b?"), "{m}");
        assert!(!m.contains("Bcc"), "{m}");
        assert!(m.ends_with("\r\n\r\none\r\n..two\r\n.\r\n"), "{m}");
    }
}
