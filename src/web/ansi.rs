//! ANSI colours in job logs to HTML: SGR sequences (`ESC [ … m`) become `<span class>`s, every
//! other escape sequence and control character is dropped, and the text itself is always
//! escaped by the template engine, so a log line `<script>` is shown as text, never run.

use maud::{Markup, html};

/// The style in force at a point of a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    /// 0–15, a palette colour.
    fg: Option<u8>,
    bg: Option<u8>,
}

impl Style {
    /// The CSS classes of this style (`b`, `fg1`, `bg4` …); empty for plain text.
    pub fn classes(&self) -> String {
        let mut c = Vec::new();
        if self.bold {
            c.push("b".to_owned());
        }
        if self.dim {
            c.push("d".to_owned());
        }
        if self.italic {
            c.push("i".to_owned());
        }
        if self.underline {
            c.push("u".to_owned());
        }
        if let Some(f) = self.fg {
            c.push(format!("fg{f}"));
        }
        if let Some(b) = self.bg {
            c.push(format!("bg{b}"));
        }
        c.join(" ")
    }

    fn apply(&mut self, params: &[u16]) {
        let mut i = 0;
        if params.is_empty() {
            *self = Style::default();
        }
        while i < params.len() {
            let p = params[i];
            match p {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((p - 30) as u8),
                90..=97 => self.fg = Some((p - 90 + 8) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((p - 40) as u8),
                100..=107 => self.bg = Some((p - 100 + 8) as u8),
                49 => self.bg = None,
                // 256-colour and true-colour: the first 16 map to the palette, the rest are
                // shown plain (their parameters are skipped).
                38 | 48 => {
                    let colour = match params.get(i + 1) {
                        Some(5) => {
                            let n = params.get(i + 2).copied();
                            i += 2;
                            n.filter(|n| *n < 16).map(|n| n as u8)
                        }
                        Some(2) => {
                            i += 4;
                            None
                        }
                        _ => None,
                    };
                    if p == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Splits a line into styled runs, starting from `style` (a style carries over lines); returns
/// the runs and the style at the end of the line.
pub fn runs(line: &str, mut style: Style) -> (Vec<(Style, String)>, Style) {
    let mut out: Vec<(Style, String)> = Vec::new();
    let mut text = String::new();
    let mut chars = line.chars().peekable();
    let flush = |out: &mut Vec<(Style, String)>, text: &mut String, style: Style| {
        if !text.is_empty() {
            out.push((style, std::mem::take(text)));
        }
    };
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    let mut seq = String::new();
                    let mut end = None;
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            end = Some(c);
                            break;
                        }
                        if seq.len() < 64 {
                            seq.push(c);
                        }
                    }
                    if end == Some('m') {
                        flush(&mut out, &mut text, style);
                        let params: Vec<u16> = if seq.is_empty() {
                            Vec::new()
                        } else {
                            seq.split(';')
                                .map(|p| p.parse::<u16>().unwrap_or(0))
                                .collect()
                        };
                        style.apply(&params);
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    chars.next();
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            }
        } else if c == '\t' || !c.is_control() {
            text.push(c);
        }
    }
    flush(&mut out, &mut text, style);
    (out, style)
}

/// One log line as HTML (escaped text in styled spans).
pub fn line(text: &str, style: Style) -> (Markup, Style) {
    let (runs, end) = runs(text, style);
    let m = html! {
        @for (s, t) in &runs {
            @let classes = s.classes();
            @if classes.is_empty() { (t) } @else { span class=(classes) { (t) } }
        }
    };
    (m, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_classes_and_markup_stays_text() {
        let (m, end) = line(
            "\u{1b}[1;31mred <script>alert(1)</script>\u{1b}[0m ok",
            Style::default(),
        );
        let html = m.into_string();
        assert_eq!(
            html,
            "<span class=\"b fg1\">red &lt;script&gt;alert(1)&lt;/script&gt;</span> ok"
        );
        assert_eq!(end, Style::default());
    }

    #[test]
    fn a_style_carries_over_lines_and_other_sequences_vanish() {
        let (_, s) = line("\u{1b}[32mgreen", Style::default());
        let (m, _) = line("still\u{1b}[2K\u{1b}]0;title\u{7} \u{1b}[38;5;9mbright", s);
        assert_eq!(
            m.into_string(),
            "<span class=\"fg2\">still </span><span class=\"fg9\">bright</span>"
        );
        // A truncated sequence or garbage parameters do not panic.
        let (m, _) = line("x\u{1b}[", Style::default());
        assert_eq!(m.into_string(), "x");
        let (m, _) = line("\u{1b}[99999;38;2mq\u{0}", Style::default());
        assert_eq!(m.into_string(), "q");
    }
}
