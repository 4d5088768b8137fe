//! What wampload concludes from each EVENT or RESULT it receives.
//!
//! Counting frames says how many arrived, not whether the right ones did: a router that sends an
//! event to the wrong subscription, loses one, sends one twice or swaps two would look healthy. So
//! every event is checked against what the subscriber knows — the subscription id SUBSCRIBED
//! returned, the concrete topic for pattern subscriptions, a plausible publication id — and its
//! `(publisher, seq)` goes through a per-publisher [`SeqTracker`]. RPC results are checked against
//! the call they answer. The checks are pure functions of the frame so that they can be tested with
//! crafted frames.

use std::borrow::Cow;

use wampd::protocol::{Message, Serializer};

use crate::scan::{scan, Lead, EVENT, RESULT};
use crate::seq::SeqTracker;
use crate::session::{lead_u64s, raw_args};

/// Largest id the spec allows (ids are drawn from [1, 2^53]).
const MAX_ID: u64 = 1 << 53;

/// How received messages are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reader {
    /// Light scan of the fields checked, full parse only for what the scan does not recognise.
    Check,
    /// Full validated parse of every message, then the same checks.
    Full,
    /// Frames are counted and nothing else: the ceiling reference, not a measurement.
    Count,
}

impl Reader {
    pub fn name(self) -> &'static str {
        match self {
            Reader::Check => "check",
            Reader::Full => "full",
            Reader::Count => "count",
        }
    }
}

/// The same fields through the full validated parse.
fn parsed_lead(ser: Serializer, frame: &[u8]) -> Result<Option<Lead<'_>>, String> {
    let msg = Message::parse(ser, frame).map_err(|e| format!("bad message: {e}"))?;
    let (code, ids, details, args) = match msg {
        Message::Event {
            subscription,
            publication,
            details,
            args,
            ..
        } => (EVENT, [subscription, publication], Some(details), args),
        Message::Result { request, args, .. } => (RESULT, [request, 0], None, args),
        _ => return Ok(None),
    };
    let args = raw_args(&args)
        .and_then(|a| lead_u64s::<3>(ser, a))
        .ok_or_else(|| format!("message {code} without three leading integer arguments"))?;
    let topic = details
        .and_then(|d| d.get("topic"))
        .and_then(|t| t.as_str())
        .map(|s| match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
            Cow::Owned(o) => Cow::Owned(o.into_bytes()),
        });
    Ok(Some(Lead {
        code,
        ids,
        topic,
        args,
    }))
}

/// What one received frame was.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A new event; its send time (ns on the shared clock).
    New(u64),
    /// An event received before.
    Duplicate,
    /// An event that failed a check (counted); why.
    Bad(String),
    /// Not an event: the caller looks at it.
    Other,
}

/// One subscriber's checks.
pub struct EventCheck {
    ser: Serializer,
    full: bool,
    subscription: u64,
    /// The concrete topic pattern-subscription events must name.
    topic: Option<Vec<u8>>,
    pub trackers: Vec<SeqTracker>,
    pub wrong_subscription: u64,
    pub wrong_topic: u64,
    pub malformed: u64,
    /// Frames the light scan declined, read by the full parse instead (should stay near 0).
    pub parsed_in_full: u64,
}

impl EventCheck {
    /// `subscription`: the id SUBSCRIBED returned; `topic`: for pattern subscriptions, the topic the
    /// events are published to; `publishers`: how many publishers number their events.
    pub fn new(
        ser: Serializer,
        full: bool,
        subscription: u64,
        topic: Option<&str>,
        publishers: usize,
    ) -> Self {
        EventCheck {
            ser,
            full,
            subscription,
            topic: topic.map(|t| t.as_bytes().to_vec()),
            trackers: vec![SeqTracker::new(); publishers],
            wrong_subscription: 0,
            wrong_topic: 0,
            malformed: 0,
            parsed_in_full: 0,
        }
    }

    pub fn on_frame(&mut self, frame: &[u8]) -> Seen {
        // The lead is checked where it lies: moving it out of the scan costs as much as the scan.
        if !self.full {
            if let Some(l) = scan(self.ser, frame) {
                return self.check(&l);
            }
        }
        self.parsed_in_full += 1;
        match parsed_lead(self.ser, frame) {
            Ok(Some(l)) => self.check(&l),
            Ok(None) => Seen::Other,
            Err(e) => {
                self.malformed += 1;
                Seen::Bad(e)
            }
        }
    }

    #[inline(always)]
    fn check(&mut self, lead: &Lead<'_>) -> Seen {
        if lead.code != EVENT {
            return Seen::Other;
        }
        let [sub, publication] = lead.ids;
        if sub != self.subscription {
            self.wrong_subscription += 1;
            return Seen::Bad(format!(
                "EVENT for subscription {sub}, subscribed as {}",
                self.subscription
            ));
        }
        if let Some(want) = &self.topic {
            if lead.topic.as_deref() != Some(want.as_slice()) {
                self.wrong_topic += 1;
                return Seen::Bad(format!(
                    "EVENT with topic {:?}, published to {:?}",
                    lead.topic
                        .as_ref()
                        .map(|t| String::from_utf8_lossy(t).into_owned()),
                    String::from_utf8_lossy(want)
                ));
            }
        }
        let [p, seq, sent] = lead.args;
        if publication == 0 || publication > MAX_ID || p as usize >= self.trackers.len() {
            self.malformed += 1;
            return Seen::Bad(format!(
                "EVENT with publication id {publication}, publisher index {p}"
            ));
        }
        if self.trackers[p as usize].record(seq) {
            Seen::New(sent)
        } else {
            Seen::Duplicate
        }
    }
}

/// One caller's checks: each RESULT must echo `[caller, request, …]` of the call it answers.
pub struct CallCheck {
    ser: Serializer,
    full: bool,
    caller: u64,
    /// Request ids are 1, 2, 3 …: the tracker sees `request - 1`.
    pub seen: SeqTracker,
    pub wrong_result: u64,
}

/// What one frame a caller received was.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The result of a call in flight; its send time.
    New(u64),
    Duplicate,
    Bad(String),
    Other,
}

impl CallCheck {
    pub fn new(ser: Serializer, full: bool, caller: u64) -> Self {
        CallCheck {
            ser,
            full,
            caller,
            seen: SeqTracker::new(),
            wrong_result: 0,
        }
    }

    pub fn on_frame(&mut self, frame: &[u8]) -> Answer {
        if !self.full {
            if let Some(l) = scan(self.ser, frame) {
                return self.check(&l);
            }
        }
        match parsed_lead(self.ser, frame) {
            Ok(Some(l)) => self.check(&l),
            Ok(None) => Answer::Other,
            Err(e) => {
                self.wrong_result += 1;
                Answer::Bad(e)
            }
        }
    }

    #[inline(always)]
    fn check(&mut self, lead: &Lead<'_>) -> Answer {
        if lead.code != RESULT {
            return Answer::Other;
        }
        let request = lead.ids[0];
        let [caller, seq, sent] = lead.args;
        if caller != self.caller || seq != request || request == 0 {
            self.wrong_result += 1;
            return Answer::Bad(format!(
                "RESULT {request} carries the arguments of caller {caller}'s call {seq}"
            ));
        }
        if self.seen.record(request - 1) {
            Answer::New(sent)
        } else {
            Answer::Duplicate
        }
    }

    /// An ERROR answering `request`: true when it answers a call in flight (not a repeat).
    pub fn on_error(&mut self, request: u64) -> bool {
        request > 0 && self.seen.record(request - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::args_with_padding;
    use wampd::protocol::Val;

    fn event(
        ser: Serializer,
        sub: u64,
        publ: u64,
        topic: Option<&str>,
        p: u64,
        seq: u64,
    ) -> Vec<u8> {
        let details = match topic {
            Some(t) => Val::Dict(vec![(
                Cow::Borrowed("topic"),
                Val::Str(Cow::Owned(t.into())),
            )]),
            None => Val::empty_dict(),
        };
        let m = Message::Event {
            subscription: sub,
            publication: publ,
            details,
            args: Some(args_with_padding(p, seq, 1000 + seq, "pad")),
            kwargs: None,
        };
        let mut out = Vec::new();
        m.encode(ser, &mut out).unwrap();
        out
    }

    /// Feeds publisher 0's events with these sequence numbers; then finishes with `total` sent.
    fn feed(c: &mut EventCheck, ser: Serializer, seqs: &[u64], total: u64) -> Vec<Seen> {
        let seen = seqs
            .iter()
            .map(|&s| c.on_frame(&event(ser, 7, 100 + s, None, 0, s)))
            .collect();
        c.trackers[0].finish(total);
        seen
    }

    #[test]
    fn lost_duplicated_reordered_in_both_readers() {
        for ser in Serializer::ALL {
            for full in [false, true] {
                let mut c = EventCheck::new(ser, full, 7, None, 1);
                // 0 1 3 2 3 5: 2 is late (out of order), 3 repeats, 4 never comes, 6 is the lost tail.
                let seen = feed(&mut c, ser, &[0, 1, 3, 2, 3, 5], 7);
                assert_eq!(seen[0], Seen::New(1000));
                assert_eq!(seen[4], Seen::Duplicate, "{ser:?} full={full}");
                let t = &c.trackers[0];
                assert_eq!(
                    (t.received, t.lost, t.duplicated, t.out_of_order),
                    (5, 2, 1, 1),
                    "{ser:?} full={full}"
                );
                assert_eq!(
                    (c.wrong_subscription, c.wrong_topic, c.malformed),
                    (0, 0, 0)
                );
                // The light scan read every event itself; the full reader parsed them all.
                assert_eq!(c.parsed_in_full, if full { 6 } else { 0 });
            }
        }
    }

    #[test]
    fn wrong_subscription_is_not_a_delivery() {
        for ser in Serializer::ALL {
            for full in [false, true] {
                let mut c = EventCheck::new(ser, full, 7, None, 1);
                assert_eq!(c.on_frame(&event(ser, 7, 1, None, 0, 0)), Seen::New(1000));
                let s = c.on_frame(&event(ser, 8, 2, None, 0, 1));
                assert!(matches!(s, Seen::Bad(_)), "{s:?}");
                assert_eq!(c.wrong_subscription, 1);
                c.trackers[0].finish(2);
                assert_eq!((c.trackers[0].received, c.trackers[0].lost), (1, 1));
            }
        }
    }

    #[test]
    fn pattern_subscription_topic() {
        for ser in Serializer::ALL {
            for full in [false, true] {
                let mut c = EventCheck::new(ser, full, 7, Some("a.b.c"), 1);
                let ok = c.on_frame(&event(ser, 7, 1, Some("a.b.c"), 0, 0));
                assert_eq!(ok, Seen::New(1000));
                let wrong = c.on_frame(&event(ser, 7, 2, Some("a.b.d"), 0, 1));
                assert!(matches!(wrong, Seen::Bad(_)), "{wrong:?}");
                let missing = c.on_frame(&event(ser, 7, 3, None, 0, 2));
                assert!(matches!(missing, Seen::Bad(_)), "{missing:?}");
                assert_eq!(c.wrong_topic, 2, "{ser:?} full={full}");
            }
        }
    }

    #[test]
    fn malformed_and_other_messages() {
        for ser in Serializer::ALL {
            let mut c = EventCheck::new(ser, false, 7, None, 2);
            // Publisher index beyond the publishers there are; publication id 0.
            assert!(matches!(
                c.on_frame(&event(ser, 7, 1, None, 2, 0)),
                Seen::Bad(_)
            ));
            assert!(matches!(
                c.on_frame(&event(ser, 7, 0, None, 1, 0)),
                Seen::Bad(_)
            ));
            assert!(matches!(c.on_frame(b"\xff\x00garbage"), Seen::Bad(_)));
            assert_eq!(c.malformed, 3);
            let mut g = Vec::new();
            Message::Published {
                request: 1,
                publication: 2,
            }
            .encode(ser, &mut g)
            .unwrap();
            assert_eq!(c.on_frame(&g), Seen::Other);
        }
    }

    fn result(ser: Serializer, request: u64, caller: u64, seq: u64) -> Vec<u8> {
        let m = Message::Result {
            request,
            details: Val::empty_dict(),
            args: Some(args_with_padding(caller, seq, 50, "")),
            kwargs: None,
        };
        let mut out = Vec::new();
        m.encode(ser, &mut out).unwrap();
        out
    }

    #[test]
    fn call_results_are_matched_to_calls() {
        for ser in Serializer::ALL {
            for full in [false, true] {
                let mut c = CallCheck::new(ser, full, 3);
                assert_eq!(c.on_frame(&result(ser, 1, 3, 1)), Answer::New(50));
                assert_eq!(c.on_frame(&result(ser, 3, 3, 3)), Answer::New(50));
                assert_eq!(c.on_frame(&result(ser, 2, 3, 2)), Answer::New(50));
                assert_eq!(c.on_frame(&result(ser, 2, 3, 2)), Answer::Duplicate);
                // Another caller's arguments, or another call's.
                assert!(matches!(c.on_frame(&result(ser, 4, 2, 4)), Answer::Bad(_)));
                assert!(matches!(c.on_frame(&result(ser, 4, 3, 5)), Answer::Bad(_)));
                assert!(c.on_error(5));
                assert!(!c.on_error(5));
                c.seen.finish(6);
                assert_eq!(c.wrong_result, 2);
                assert_eq!(
                    (c.seen.out_of_order, c.seen.duplicated, c.seen.lost),
                    (1, 2, 2),
                    "{ser:?} full={full}"
                );
            }
        }
    }
}
