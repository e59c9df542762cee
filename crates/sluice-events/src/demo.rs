//! Realistic product-analytics traffic in Segment's JSON shape, for
//! `sluice send --demo`, the end-to-end tests and the benchmarks: a
//! crowdfunding site's page views, video plays, pledges, searches, sign-ups
//! and comments, with nested properties, a high-cardinality project id, an
//! A/B experiment, identifies, and properties that only appear partway
//! through (as they do when engineers ship new instrumentation).
//!
//! Deterministic for a seed, so a test can regenerate what it sent.

use serde_json::{Value, json};

use crate::time::format_us;

/// Events after which the "new instrumentation" properties appear.
pub const NEW_PROPERTIES_AFTER: u64 = 1_000;

const CATEGORIES: [&str; 8] = [
    "games",
    "design",
    "technology",
    "film",
    "music",
    "publishing",
    "food",
    "art",
];
const COUNTRIES: [&str; 6] = ["US", "GB", "DE", "FR", "JP", "BR"];
const SEARCHES: [&str; 6] = [
    "board game",
    "mechanical keyboard",
    "indie film",
    "vinyl",
    "cookbook",
    "ceramics",
];
const PLANS: [&str; 3] = ["free", "plus", "pro"];
const TRACKS: [&str; 7] = [
    "Project Page Viewed",
    "Video Played",
    "Pledge Started",
    "Pledge Completed",
    "Search Performed",
    "Signed Up",
    "Comment Posted",
];
const USERS: u64 = 5_000;
const PROJECTS: u64 = 200_000;

/// An endless, seeded stream of demo events.
pub struct DemoEvents {
    state: u64,
    produced: u64,
}

impl DemoEvents {
    pub fn new(seed: u64) -> Self {
        DemoEvents {
            state: seed,
            produced: 0,
        }
    }

    /// Events produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// The next event, stamped `now_us` (microseconds since the epoch), with
    /// `message_id` as its `messageId`.
    pub fn next_event(&mut self, now_us: i64, message_id: &str) -> Value {
        self.produced += 1;
        let user = self.below(USERS);
        let mut event = match self.below(100) {
            0..=5 => self.identify(user),
            6..=20 => self.page(),
            _ => self.track(),
        };
        let fields = event.as_object_mut().expect("events are objects");
        fields.insert("messageId".into(), message_id.into());
        fields.insert("userId".into(), format!("user_{user:05}").into());
        fields.insert(
            "anonymousId".into(),
            format!("anon_{:08x}", user.wrapping_mul(0x9e37_79b9)).into(),
        );
        fields.insert("timestamp".into(), format_us(now_us).into());
        fields.insert("context".into(), self.context());
        event
    }

    fn track(&mut self) -> Value {
        let name = TRACKS[self.below(TRACKS.len() as u64) as usize];
        let project = self.project();
        let late = self.produced > NEW_PROPERTIES_AFTER;
        let mut properties = match name {
            "Project Page Viewed" => json!({
                "project": project,
                "referrer": {"source": self.pick(&["search", "home", "email", "social"]), "campaign": "fall_launch"},
                "position": self.below(48),
            }),
            "Video Played" => json!({
                "project": {"id": project["id"]},
                "video": {"id": format!("vid_{}", self.below(50_000)), "duration_s": self.below(6_000) as f64 / 10.0, "autoplay": self.below(2) == 0},
            }),
            "Pledge Started" | "Pledge Completed" => json!({
                "project": project,
                "amount_usd": self.below(50_000) as f64 / 100.0,
                "currency": "USD",
                "reward_tier": self.below(5),
                "experiment": self.experiment(),
            }),
            "Search Performed" => json!({
                "query": self.pick(&SEARCHES),
                "results_count": self.below(500),
                "filters": {"category": self.pick(&CATEGORIES), "staff_pick": self.below(4) == 0},
            }),
            "Signed Up" => json!({
                "method": self.pick(&["email", "google", "apple"]),
                "plan": self.pick(&PLANS),
                "experiment": self.experiment(),
            }),
            _ => json!({
                "project": {"id": project["id"]},
                "comment": {"length": self.below(2_000), "has_link": self.below(5) == 0},
            }),
        };
        if late {
            let extra = properties.as_object_mut().expect("properties are objects");
            match name {
                "Pledge Completed" => {
                    extra.insert(
                        "coupon_code".into(),
                        format!("FALL{}", self.below(20)).into(),
                    );
                }
                "Project Page Viewed" => {
                    extra.insert("recommendation_rank".into(), self.below(10).into());
                }
                _ => {}
            }
        }
        json!({"type": "track", "event": name, "properties": properties})
    }

    fn page(&mut self) -> Value {
        let id = self.below(PROJECTS);
        json!({
            "type": "page",
            "name": "Project",
            "properties": {
                "path": format!("/projects/{id}"),
                "url": format!("https://crowd.example.com/projects/{id}"),
                "title": format!("Project {id}"),
                "referrer": "https://www.google.com/",
            },
        })
    }

    fn identify(&mut self, user: u64) -> Value {
        json!({
            "type": "identify",
            "traits": {
                "email": format!("user{user}@example.com"),
                "plan": self.pick(&PLANS),
                "address": {"country": self.pick(&COUNTRIES)},
                "backer_count": self.below(300),
            },
        })
    }

    fn project(&mut self) -> Value {
        json!({
            "id": format!("proj_{:06}", self.below(PROJECTS)),
            "category": self.pick(&CATEGORIES),
            "goal_usd": 1_000 * (1 + self.below(100)),
            "creator": {"id": format!("creator_{}", self.below(20_000)), "country": self.pick(&COUNTRIES)},
        })
    }

    fn experiment(&mut self) -> Value {
        let variant = self.pick(&["control", "treatment"]);
        json!({"name": "checkout_redesign", "variant": variant})
    }

    fn context(&mut self) -> Value {
        json!({
            "library": {"name": "sluice-demo", "version": env!("CARGO_PKG_VERSION")},
            "locale": self.pick(&["en-US", "en-GB", "de-DE", "fr-FR", "ja-JP"]),
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
        })
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.below(choices.len() as u64) as usize]
    }

    /// A uniform-enough number in `0..bound` (splitmix64; the demo needs
    /// variety and determinism, not cryptographic quality).
    fn below(&mut self, bound: u64) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IngestContext, Limits, envelope_from_json};

    fn events(seed: u64, n: usize) -> Vec<Value> {
        let mut demo = DemoEvents::new(seed);
        (0..n)
            .map(|i| demo.next_event(1_790_000_000_000_000, &format!("m{i}")))
            .collect()
    }

    #[test]
    fn same_seed_same_events() {
        assert_eq!(events(7, 50), events(7, 50));
        assert_ne!(events(7, 50), events(8, 50));
    }

    #[test]
    fn every_event_is_accepted_and_realistically_sized() {
        let all = events(1, 2_000);
        let context = IngestContext::default();
        let mut bytes = 0;
        for event in &all {
            let text = event.to_string();
            bytes += text.len();
            envelope_from_json(&text, &context, &Limits::default())
                .unwrap_or_else(|e| panic!("{e}: {text}"));
        }
        let average = bytes / all.len();
        assert!((350..=700).contains(&average), "average {average} bytes");
    }

    #[test]
    fn new_properties_appear_partway_through() {
        let all = events(3, 3_000);
        let has_coupon = |e: &Value| e["properties"].get("coupon_code").is_some();
        let first = all.iter().position(has_coupon).expect("coupons appear");
        assert!(first >= NEW_PROPERTIES_AFTER as usize, "{first}");
        let kinds: std::collections::BTreeSet<_> =
            all.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
    }
}
