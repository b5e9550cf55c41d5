//! A small IRC client: connect (TLS optional), register (SASL PLAIN optional), join one
//! channel, say some lines, quit, and wait for the server to close, so that the lines were
//! taken before the delivery counts as made. It must not stay connected or answer anyone.

use base64::Engine as _;

use super::SendError;
use super::net::Conn;
use super::outbox::Timeouts;
use crate::config::files::IrcTarget;
use crate::secrets::Credentials;

/// A message as the server sent it: (command, parameters with the trailing one last).
fn parse(line: &str) -> (String, Vec<String>) {
    let mut rest = line;
    if rest.starts_with(':') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r);
    }
    let (head, trailing) = match rest.split_once(" :") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let mut words = head.split_whitespace();
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_owned).collect();
    if let Some(t) = trailing {
        params.push(t.to_owned());
    }
    (command, params)
}

/// Says `lines` in the target's channel.
pub(super) fn send(
    t: &IrcTarget,
    account: Option<&Credentials>,
    lines: &[String],
    timeouts: Timeouts,
) -> Result<(), SendError> {
    let port = t.port.unwrap_or(if t.tls { 6697 } else { 6667 });
    let account = if t.sasl {
        Some(account.ok_or_else(|| {
            SendError::Setup(
                "the IRC target asks for SASL but the secrets file has no `irc:` account".into(),
            )
        })?)
    } else {
        None
    };
    let mut c = Conn::connect(&t.server, port, timeouts.io, timeouts.total)?;
    if t.tls {
        c = c.start_tls(t.ca_cert.as_deref())?;
    }
    let refused = |c: &Conn, what: &str, reply: &str| SendError::Refused {
        addr: c.addr.clone(),
        what: what.to_owned(),
        reply: reply.to_owned(),
    };
    if account.is_some() {
        c.send("CAP REQ :sasl")?;
    }
    let mut nick = t.nick.clone();
    let mut logged_in = false;
    c.send(&format!("NICK {nick}"))?;
    c.send(&format!("USER {} 0 * :seakeeper notifications", t.nick))?;
    // Registration (and SASL).
    loop {
        let Some(line) = c.line()? else {
            return Err(refused(&c, "the registration", "closed the connection"));
        };
        let (cmd, params) = parse(&line);
        match cmd.as_str() {
            "PING" => c.send(&format!(
                "PONG :{}",
                params.last().cloned().unwrap_or_default()
            ))?,
            "CAP" if params.get(1).is_some_and(|p| p == "ACK") => {
                c.send("AUTHENTICATE PLAIN")?;
            }
            "CAP" if params.get(1).is_some_and(|p| p == "NAK") => {
                return Err(refused(&c, "SASL", "the server offers no SASL"));
            }
            "AUTHENTICATE" if params.first().is_some_and(|p| p == "+") => {
                let a = account.expect("SASL is asked for only with an account");
                let raw = format!("{}\0{}\0{}", a.username, a.username, a.password());
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                // Chunks of 400 bytes, and an empty one (`+`) when the last chunk was full.
                let mut chunks: Vec<&str> = Vec::new();
                let mut rest = b64.as_str();
                while rest.len() >= 400 {
                    chunks.push(&rest[..400]);
                    rest = &rest[400..];
                }
                chunks.push(if rest.is_empty() { "+" } else { rest });
                for chunk in chunks {
                    c.send(&format!("AUTHENTICATE {chunk}"))?;
                }
            }
            "903" => {
                logged_in = true;
                c.send("CAP END")?;
            }
            "902" | "904" | "905" | "906" | "908" => {
                return Err(refused(&c, "the SASL login", &line));
            }
            "433" if nick.len() < t.nick.len() + 3 => {
                nick.push('_');
                c.send(&format!("NICK {nick}"))?;
            }
            "001" if account.is_some() && !logged_in => {
                return Err(refused(&c, "SASL", "registered without a SASL login"));
            }
            "001" => break,
            "ERROR" => return Err(refused(&c, "the registration", &line)),
            n if n.len() == 3 && (n.starts_with('4') || n.starts_with('5')) && n != "433" => {
                return Err(refused(&c, "the registration", &line));
            }
            "433" => return Err(refused(&c, "every nick tried", &line)),
            _ => {}
        }
    }
    c.send(&format!("JOIN {}", t.channel))?;
    loop {
        let Some(line) = c.line()? else {
            return Err(refused(&c, "the join", "closed the connection"));
        };
        let (cmd, params) = parse(&line);
        match cmd.as_str() {
            "PING" => c.send(&format!(
                "PONG :{}",
                params.last().cloned().unwrap_or_default()
            ))?,
            "366" => break,
            "403" | "405" | "471" | "473" | "474" | "475" | "477" | "ERROR" => {
                return Err(refused(&c, &format!("joining {}", t.channel), &line));
            }
            _ => {}
        }
    }
    for l in lines {
        let text = super::truncate(&super::one_line(l), 400);
        c.send(&format!("PRIVMSG {} :{text}", t.channel))?;
    }
    c.send("QUIT :done")?;
    // The server closes once it has taken everything before QUIT.
    while let Some(line) = c.line()? {
        let (cmd, params) = parse(&line);
        match cmd.as_str() {
            "ERROR" => break,
            "404" => return Err(refused(&c, &format!("a message to {}", t.channel), &line)),
            "PING" => c.send(&format!(
                "PONG :{}",
                params.last().cloned().unwrap_or_default()
            ))?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_parse_with_and_without_prefix_and_trailing_parameter() {
        assert_eq!(
            super::parse(":irc.test 001 bot :Welcome to IRC"),
            ("001".into(), vec!["bot".into(), "Welcome to IRC".into()])
        );
        assert_eq!(
            super::parse("PING :irc.test"),
            ("PING".into(), vec!["irc.test".into()])
        );
        assert_eq!(
            super::parse(":irc.test CAP * ACK :sasl"),
            ("CAP".into(), vec!["*".into(), "ACK".into(), "sasl".into()])
        );
        assert_eq!(
            super::parse("AUTHENTICATE +"),
            ("AUTHENTICATE".into(), vec!["+".into()])
        );
    }
}
