//! [`InputWatermarks`]: per input channel watermarks → the subtask's combined watermark.
//!
//! Each channel is active (holding the newest watermark it sent, none before its first), idle,
//! or ended. The combined watermark is the minimum over the active channels; it is handed out
//! only when it rises above the last one handed out, so downstream sees a strictly increasing
//! sequence. Idle and ended channels drop out of the minimum. A channel that becomes active
//! again behind the combined watermark is left out until it catches up (Flink's "aligned"
//! channels in `StatusWatermarkValve`): its records are late, but it does not stop event time.
//! When every channel that has not ended is idle, the subtask itself is idle and says so once.

use super::watermark::{Watermark, WatermarkEvent};

/// One input channel's event-time state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelTime {
    /// Emits watermarks; `None` before its first one (it holds everything back).
    Active(Option<Watermark>),
    /// Declared itself idle; keeps its last watermark.
    Idle(Option<Watermark>),
    /// Its end of input arrived: nothing more will come.
    Ended,
}

/// A subtask's input side of event time. Pure: fed channel events in the order the gate hands
/// them out, answers what to forward.
#[derive(Clone, Debug)]
pub struct InputWatermarks {
    channels: Vec<ChannelTime>,
    /// The newest combined watermark handed out.
    current: Option<Watermark>,
    /// Whether `Idle` was handed out since the last watermark.
    idle: bool,
}

impl InputWatermarks {
    /// `channels` active input channels, none with a watermark yet.
    pub fn new(channels: usize) -> Self {
        Self {
            channels: vec![ChannelTime::Active(None); channels],
            current: None,
            idle: false,
        }
    }

    /// The newest combined watermark handed out (the operator's current watermark).
    pub fn current(&self) -> Option<Watermark> {
        self.current
    }

    /// True while every channel that has not ended is idle (and `Idle` was handed out).
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// `event` arrived on `channel` (an unknown channel is ignored). Returns what to forward:
    /// the new combined watermark if it advanced, `Idle` if the subtask just became idle.
    pub fn on_event(&mut self, channel: usize, event: WatermarkEvent) -> Option<WatermarkEvent> {
        let slot = self.channels.get_mut(channel)?;
        *slot = match (*slot, event) {
            (ChannelTime::Ended, _) => return None,
            (ChannelTime::Active(old) | ChannelTime::Idle(old), WatermarkEvent::Advance(w)) => {
                // A channel's watermark never goes back.
                ChannelTime::Active(old.max(Some(w)))
            }
            (ChannelTime::Active(old) | ChannelTime::Idle(old), WatermarkEvent::Idle) => {
                ChannelTime::Idle(old)
            }
        };
        self.update()
    }

    /// `channel`'s end of input arrived: it no longer holds the watermark back.
    pub fn on_end_of_input(&mut self, channel: usize) -> Option<WatermarkEvent> {
        let slot = self.channels.get_mut(channel)?;
        *slot = ChannelTime::Ended;
        self.update()
    }

    fn update(&mut self) -> Option<WatermarkEvent> {
        let current = self.current;
        // Active channels that are not behind what was already handed out.
        let mut aligned = self.channels.iter().filter_map(|c| match *c {
            ChannelTime::Active(w) if current.is_none() || w >= current => Some(w),
            _ => None,
        });
        let Some(first) = aligned.next() else {
            // No active channel to follow: idle, unless everything ended (end of input says it).
            let open = self.channels.iter().any(|c| *c != ChannelTime::Ended);
            if open && !self.idle {
                self.idle = true;
                return Some(WatermarkEvent::Idle);
            }
            return None;
        };
        let min = aligned.fold(first, |a, b| a.min(b));
        match min {
            Some(w) if Some(w) > current => {
                self.current = Some(w);
                self.idle = false;
                Some(WatermarkEvent::Advance(w))
            }
            _ => {
                // An active channel behind (or without) a watermark: not idle any more, but
                // nothing new to say until the watermark advances.
                self.idle = false;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn adv(ms: i64) -> WatermarkEvent {
        WatermarkEvent::Advance(Watermark(ms))
    }

    #[test]
    fn the_combined_watermark_is_the_minimum_and_waits_for_every_channel() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.on_event(0, adv(10)), None, "channel 1 has sent none yet");
        assert_eq!(w.on_event(1, adv(5)), Some(adv(5)));
        assert_eq!(w.on_event(1, adv(20)), Some(adv(10)));
        assert_eq!(w.on_event(0, adv(15)), Some(adv(15)));
        assert_eq!(w.current(), Some(Watermark(15)));
    }

    #[test]
    fn it_is_forwarded_only_when_it_advances() {
        let mut w = InputWatermarks::new(2);
        w.on_event(0, adv(10));
        assert_eq!(w.on_event(1, adv(10)), Some(adv(10)));
        assert_eq!(w.on_event(1, adv(10)), None);
        assert_eq!(w.on_event(0, adv(12)), None, "channel 1 still at 10");
        assert_eq!(
            w.on_event(0, adv(3)),
            None,
            "a channel's watermark never goes back"
        );
        assert_eq!(w.on_event(1, adv(11)), Some(adv(11)));
    }

    #[test]
    fn an_ended_channel_drops_out() {
        let mut w = InputWatermarks::new(3);
        w.on_event(0, adv(30));
        w.on_event(1, adv(7));
        assert_eq!(w.on_end_of_input(2), Some(adv(7)));
        assert_eq!(w.on_end_of_input(1), Some(adv(30)));
        assert_eq!(
            w.on_end_of_input(0),
            None,
            "every channel ended: end of input says it"
        );
        assert_eq!(w.on_event(0, adv(40)), None, "nothing after the end");
    }

    #[test]
    fn an_idle_channel_does_not_hold_the_watermark_back() {
        let mut w = InputWatermarks::new(2);
        w.on_event(0, adv(100));
        assert_eq!(w.on_event(1, WatermarkEvent::Idle), Some(adv(100)));
        assert_eq!(w.on_event(0, adv(150)), Some(adv(150)));
    }

    #[test]
    fn a_channel_back_from_idle_behind_the_watermark_waits_until_it_catches_up() {
        let mut w = InputWatermarks::new(2);
        w.on_event(1, WatermarkEvent::Idle);
        assert_eq!(w.on_event(0, adv(100)), Some(adv(100)));
        assert_eq!(w.on_event(1, adv(40)), None, "behind: not aligned");
        assert_eq!(
            w.on_event(0, adv(120)),
            Some(adv(120)),
            "the lagging channel does not hold event time back"
        );
        assert_eq!(
            w.on_event(1, adv(130)),
            None,
            "aligned again, channel 0 is the minimum"
        );
        assert_eq!(w.on_event(0, adv(200)), Some(adv(130)));
    }

    #[test]
    fn every_open_channel_idle_makes_the_subtask_idle_once() {
        let mut w = InputWatermarks::new(3);
        w.on_end_of_input(2);
        assert_eq!(w.on_event(0, WatermarkEvent::Idle), None);
        assert_eq!(
            w.on_event(1, WatermarkEvent::Idle),
            Some(WatermarkEvent::Idle)
        );
        assert!(w.is_idle());
        assert_eq!(w.on_event(1, WatermarkEvent::Idle), None, "said once");
        assert_eq!(
            w.on_event(0, adv(5)),
            Some(adv(5)),
            "a watermark ends idleness"
        );
        assert!(!w.is_idle());
    }

    #[derive(Clone, Debug)]
    enum Step {
        Advance(usize, i64),
        Idle(usize),
        End(usize),
    }

    fn step(channels: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..channels, 0i64..100).prop_map(|(c, w)| Step::Advance(c, w)),
            1 => (0..channels).prop_map(Step::Idle),
            1 => (0..channels).prop_map(Step::End),
        ]
    }

    proptest! {
        /// Random watermarks, idleness and ends on 1..5 channels: what is handed out rises
        /// strictly; it never passes a channel that is active, aligned and open; when every
        /// channel is active (none was ever idle) it is exactly the minimum once all have sent.
        #[test]
        fn the_combined_watermark_rises_and_never_passes_an_active_channel(
            (channels, steps) in (1usize..5).prop_flat_map(|n| (Just(n), prop::collection::vec(step(n), 0..60)))
        ) {
            let mut w = InputWatermarks::new(channels);
            // The model: each channel's max watermark, idle flag, ended flag.
            let mut max: Vec<Option<i64>> = vec![None; channels];
            let mut idle = vec![false; channels];
            let mut ended = vec![false; channels];
            let mut ever_idle = false;
            let mut last: Option<i64> = None;
            for s in steps {
                let out = match s {
                    Step::Advance(c, ms) => {
                        if !ended[c] { max[c] = max[c].max(Some(ms)); idle[c] = false; }
                        w.on_event(c, adv(ms))
                    }
                    Step::Idle(c) => {
                        if !ended[c] { idle[c] = true; ever_idle = true; }
                        w.on_event(c, WatermarkEvent::Idle)
                    }
                    Step::End(c) => { ended[c] = true; w.on_end_of_input(c) }
                };
                if let Some(WatermarkEvent::Advance(Watermark(ms))) = out {
                    prop_assert!(last.is_none_or(|l| ms > l), "{ms} after {last:?}");
                    // Every open, active channel that was not lagging behind is at or above it.
                    for c in 0..channels {
                        if !ended[c] && !idle[c] && max[c] >= last {
                            prop_assert!(max[c] >= Some(ms), "channel {c} at {:?} passed by {ms}", max[c]);
                        }
                    }
                    last = Some(ms);
                }
                prop_assert_eq!(w.current().map(|x| x.0), last);
                if !ever_idle && !ended.iter().all(|e| *e) {
                    let open = (0..channels).filter(|c| !ended[*c]);
                    let min = open.map(|c| max[c]).min().flatten();
                    let everyone_sent = (0..channels).all(|c| ended[c] || max[c].is_some());
                    if everyone_sent && min.is_some() {
                        // Without idleness it is exactly the minimum over the open channels.
                        prop_assert_eq!(last, min);
                    }
                }
            }
        }
    }
}
