//! Cron expressions for `schedules.yaml`: five fields (minute, hour, day of month, month, day
//! of week) of `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and comma lists.

/// A parsed cron expression: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Minutes 0-59.
    pub minutes: Vec<u8>,
    /// Hours 0-23.
    pub hours: Vec<u8>,
    /// Days of month 1-31.
    pub days: Vec<u8>,
    /// Months 1-12.
    pub months: Vec<u8>,
    /// Days of week 0-6 (Sunday is 0; 7 is accepted as Sunday).
    pub weekdays: Vec<u8>,
}

const FIELDS: [(&str, u8, u8); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

fn field(text: &str, (name, lo, hi): (&str, u8, u8)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step `{s}` is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let num = |v: &str| {
                v.parse::<u8>()
                    .map_err(|_| format!("{name}: `{v}` is not a number"))
            };
            (num(a)?, num(b)?)
        } else {
            let v = range
                .parse::<u8>()
                .map_err(|_| format!("{name}: `{range}` is not a number, range or `*`"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{name}: `{part}` is outside {lo}-{hi}"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl std::str::FromStr for Cron {
    type Err = String;
    fn from_str(s: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            ));
        }
        let mut weekdays = field(parts[4], FIELDS[4])?;
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            if !weekdays.contains(&0) {
                weekdays.insert(0, 0);
            }
        }
        Ok(Cron {
            minutes: field(parts[0], FIELDS[0])?,
            hours: field(parts[1], FIELDS[1])?,
            days: field(parts[2], FIELDS[2])?,
            months: field(parts[3], FIELDS[3])?,
            weekdays,
        })
    }
}

impl Cron {
    /// Whether the schedule fires in the minute of `t` (UTC). As in cron, when both the day of
    /// month and the day of week are restricted, either one matching is enough.
    pub fn matches(&self, t: crate::model::Timestamp) -> bool {
        let (month, day, hour, minute, weekday) = t.utc_calendar();
        let dom_restricted = self.days.len() < 31;
        let dow_restricted = self.weekdays.len() < 7;
        let dom = self.days.contains(&day);
        let dow = self.weekdays.contains(&weekday);
        let day_ok = match (dom_restricted, dow_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        };
        self.minutes.contains(&minute)
            && self.hours.contains(&hour)
            && self.months.contains(&month)
            && day_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let c: Cron = "*/15 3 * * 1-5".parse().unwrap();
        assert_eq!(c.minutes, vec![0, 15, 30, 45]);
        assert_eq!(c.hours, vec![3]);
        assert_eq!(c.weekdays, vec![1, 2, 3, 4, 5]);
        let c: Cron = "0 0 1,15 * 7".parse().unwrap();
        assert_eq!(c.days, vec![1, 15]);
        assert_eq!(c.weekdays, vec![0]);
    }

    #[test]
    fn matches_minutes_and_days() {
        let t = |s: &str| s.parse::<crate::model::Timestamp>().unwrap();
        let c: Cron = "30 2 * * *".parse().unwrap();
        assert!(c.matches(t("2026-12-01T02:30:59Z")));
        assert!(!c.matches(t("2026-12-01T02:31:00Z")));
        // 2026-12-01 is a Tuesday.
        let c: Cron = "0 0 * * 2".parse().unwrap();
        assert!(c.matches(t("2026-12-01T00:00:00Z")));
        assert!(!c.matches(t("2026-12-02T00:00:00Z")));
        let c: Cron = "0 0 15 * 2".parse().unwrap();
        assert!(c.matches(t("2026-12-15T00:00:00Z")), "day of month alone");
        assert!(c.matches(t("2026-12-08T00:00:00Z")), "day of week alone");
    }

    #[test]
    fn rejects_bad_ones() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
            "* * 0 * *",
        ] {
            assert!(bad.parse::<Cron>().is_err(), "{bad}");
        }
    }
}
