//! Maintenance windows: `"sat 22:00-06:00"` rules in an IANA time zone, and
//! the verdict for a given instant (inside, or when the next window opens).
//!
//! The clock is always passed in, so the verdict is testable; this module
//! never reads the time itself.

use jiff::ZonedDateTime as Zoned;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::playbook::{WindowRule, WindowSpec};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(crate) fn check_timezone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|error| error.to_string())
}

impl WindowRule {
    /// Parses `"sat 22:00-06:00"` (day names are the first three letters, any case).
    pub(crate) fn parse(text: &str) -> Result<WindowRule, String> {
        let (day, range) = text.trim().split_once(' ').ok_or("expected `DAY HH:MM-HH:MM`")?;
        let day = day.to_ascii_lowercase();
        let weekday = DAYS
            .iter()
            .position(|d| {
                day.starts_with(d)
                    && (day.len() == 3
                        || "monday tuesday wednesday thursday friday saturday sunday".contains(day.as_str()))
            })
            .ok_or_else(|| format!("`{day}` is not a day (use `mon` … `sun`)"))?;
        let (start, end) = range.trim().split_once('-').ok_or("expected a range `HH:MM-HH:MM`")?;
        let start = minutes(start)?;
        let end = minutes(end)?;
        if start == end {
            return Err("a window cannot start and end at the same time".to_owned());
        }
        Ok(WindowRule { text: text.trim().to_owned(), weekday: weekday as u8, start, end })
    }
}

fn minutes(text: &str) -> Result<u16, String> {
    let (h, m) = text.trim().split_once(':').ok_or_else(|| format!("`{text}` is not a time `HH:MM`"))?;
    let h: u16 = h.parse().map_err(|_| format!("`{text}` is not a time `HH:MM`"))?;
    let m: u16 = m.parse().map_err(|_| format!("`{text}` is not a time `HH:MM`"))?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("`{text}` is not a time of day"));
    }
    Ok(h * 60 + m)
}

/// The verdict of a window at one instant.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Verdict {
    pub(crate) timezone: String,
    pub(crate) open: bool,
    /// The rule that is open now.
    pub(crate) rule: Option<String>,
    /// When the next window opens (local time, RFC 3339 with zone), when closed.
    pub(crate) next_open: Option<String>,
}

impl WindowSpec {
    pub(crate) fn verdict(&self, now: &jiff::Timestamp) -> Verdict {
        let tz = TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC);
        let local = now.to_zoned_datetime(tz.clone());
        let today = local.date();
        let mut open_rule = None;
        let mut next: Option<Zoned> = None;
        // Windows that started yesterday may still be open; look a week ahead for the next.
        for offset in -1i64..=7 {
            let Ok(date) = today.checked_add(jiff::Span::new().days(offset)) else {
                continue;
            };
            let weekday = date.weekday().to_monday_zero_offset() as u8;
            for rule in self.allow.iter().filter(|r| r.weekday == weekday) {
                let Some(start) = at(date, rule.start, &tz) else {
                    continue;
                };
                let end_date = if rule.end <= rule.start { date.tomorrow().ok() } else { Some(date) };
                let Some(end) = end_date.and_then(|d| at(d, rule.end, &tz)) else {
                    continue;
                };
                if start.timestamp() <= *now && *now < end.timestamp() {
                    open_rule.get_or_insert_with(|| rule.text.clone());
                } else if start.timestamp() > *now && next.as_ref().is_none_or(|n| start.timestamp() < n.timestamp()) {
                    next = Some(start);
                }
            }
        }
        Verdict {
            timezone: self.timezone.clone(),
            open: open_rule.is_some(),
            next_open: if open_rule.is_some() {
                None
            } else {
                next.map(|n| n.strftime("%a %Y-%m-%d %H:%M %Z").to_string())
            },
            rule: open_rule,
        }
    }
}

impl WindowSpec {
    /// When the window open at `now` closes, or else when the next one to
    /// open closes, with its rule: how long a plan made now stays valid.
    pub(crate) fn closes(&self, now: &jiff::Timestamp) -> Option<(jiff::Timestamp, String)> {
        let tz = TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC);
        let today = now.to_zoned_datetime(tz.clone()).date();
        let mut open: Option<(jiff::Timestamp, String)> = None;
        let mut next: Option<(jiff::Timestamp, jiff::Timestamp, String)> = None;
        for offset in -1i64..=7 {
            let Ok(date) = today.checked_add(jiff::Span::new().days(offset)) else {
                continue;
            };
            let weekday = date.weekday().to_monday_zero_offset() as u8;
            for rule in self.allow.iter().filter(|r| r.weekday == weekday) {
                let end_date = if rule.end <= rule.start { date.tomorrow().ok() } else { Some(date) };
                let (Some(start), Some(end)) = (at(date, rule.start, &tz), end_date.and_then(|d| at(d, rule.end, &tz)))
                else {
                    continue;
                };
                let (start, end) = (start.timestamp(), end.timestamp());
                if start <= *now && *now < end {
                    if open.as_ref().is_none_or(|(e, _)| end > *e) {
                        open = Some((end, rule.text.clone()));
                    }
                } else if start > *now && next.as_ref().is_none_or(|(s, ..)| start < *s) {
                    next = Some((start, end, rule.text.clone()));
                }
            }
        }
        open.or_else(|| next.map(|(_, end, rule)| (end, rule)))
    }
}

fn at(date: Date, minutes: u16, tz: &TimeZone) -> Option<Zoned> {
    let (date, minutes) = if minutes == 24 * 60 { (date.tomorrow().ok()?, 0) } else { (date, minutes) };
    let time = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
    date.to_datetime(time).to_zoned_datetime(tz.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rules: &[&str]) -> WindowSpec {
        WindowSpec {
            timezone: "Europe/Berlin".into(),
            allow: rules.iter().map(|r| WindowRule::parse(r).unwrap()).collect(),
        }
    }

    fn instant(text: &str) -> jiff::Timestamp {
        text.parse::<Zoned>().unwrap().timestamp()
    }

    #[test]
    fn windows_cross_midnight() {
        let window = spec(&["sat 22:00-06:00"]);
        assert!(window.verdict(&instant("2026-11-28T23:30[Europe/Berlin]")).open);
        assert!(window.verdict(&instant("2026-11-29T05:59[Europe/Berlin]")).open);
        assert!(!window.verdict(&instant("2026-11-29T06:00[Europe/Berlin]")).open);
        assert!(!window.verdict(&instant("2026-11-28T21:59[Europe/Berlin]")).open);
    }

    #[test]
    fn says_when_the_next_window_opens() {
        let verdict =
            spec(&["sat 22:00-06:00", "sun 00:00-06:00"]).verdict(&instant("2026-11-24T12:00[Europe/Berlin]"));
        assert!(!verdict.open);
        assert_eq!(verdict.next_open.as_deref(), Some("Sat 2026-11-28 22:00 CET"));
    }

    #[test]
    fn a_plan_lasts_until_the_open_or_next_window_closes() {
        let window = spec(&["sat 22:00-06:00", "sun 00:00-06:00"]);
        // Closed on Tuesday: the next window (Saturday night) closes on Sunday at 06:00.
        let (end, rule) = window.closes(&instant("2026-11-24T12:00[Europe/Berlin]")).unwrap();
        assert_eq!(end, instant("2026-11-29T06:00[Europe/Berlin]"));
        assert_eq!(rule, "sat 22:00-06:00");
        // Open: the window that is open closes.
        let (end, _) = window.closes(&instant("2026-11-28T23:00[Europe/Berlin]")).unwrap();
        assert_eq!(end, instant("2026-11-29T06:00[Europe/Berlin]"));
        assert!(spec(&[]).closes(&instant("2026-11-28T23:00[Europe/Berlin]")).is_none());
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in ["someday 22:00-06:00", "sat 25:00-06:00", "sat 22:00", "sat 22:00-22:00"] {
            assert!(WindowRule::parse(bad).is_err(), "{bad}");
        }
    }
}
