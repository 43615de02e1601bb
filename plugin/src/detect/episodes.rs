// SPDX-License-Identifier: MIT OR Apache-2.0

//! Hysteresis over per-frame decisions: an anomalous episode starts after
//! `min_anomalous_frames` anomalous frames in a row and ends after `hold_frames` normal
//! frames in a row, so that one noisy frame neither starts nor ends one.

/// A change of episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    Start { peak: f32 },
    End { peak: f32 },
}

#[derive(Debug, Default)]
pub struct Episodes {
    in_episode: bool,
    anomalous_run: u32,
    normal_run: u32,
    /// Highest score of the current episode, or of the anomalous run leading to it.
    peak: f32,
}

impl Episodes {
    /// Feeds one inferred frame; returns the transition it causes, if any.
    pub fn update(
        &mut self,
        anomalous: bool,
        score: f32,
        min_anomalous_frames: u32,
        hold_frames: u32,
    ) -> Option<Transition> {
        if anomalous {
            if self.anomalous_run == 0 && !self.in_episode {
                self.peak = f32::MIN;
            }
            self.anomalous_run += 1;
            self.normal_run = 0;
            self.peak = self.peak.max(score);
            if !self.in_episode && self.anomalous_run >= min_anomalous_frames.max(1) {
                self.in_episode = true;
                return Some(Transition::Start { peak: self.peak });
            }
        } else {
            self.anomalous_run = 0;
            self.normal_run += 1;
            if self.in_episode && self.normal_run >= hold_frames.max(1) {
                self.in_episode = false;
                return Some(Transition::End { peak: self.peak });
            }
        }
        None
    }

    /// Ends an open episode (end of stream, flush); returns its end if one was open.
    pub fn finish(&mut self) -> Option<Transition> {
        let was = std::mem::take(self);
        was.in_episode.then_some(Transition::End { peak: was.peak })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(decisions: &[bool], min: u32, hold: u32) -> Vec<(usize, Transition)> {
        let mut e = Episodes::default();
        decisions
            .iter()
            .enumerate()
            .filter_map(|(i, &a)| e.update(a, i as f32, min, hold).map(|t| (i, t)))
            .collect()
    }

    #[test]
    fn a_single_noisy_frame_starts_nothing_with_min_two() {
        assert!(run(&[false, true, false, false], 2, 1).is_empty());
    }

    #[test]
    fn starts_after_min_and_ends_after_hold() {
        let d = [false, true, true, true, false, true, false, false, false];
        let t = run(&d, 2, 2);
        assert_eq!(
            t,
            vec![
                (2, Transition::Start { peak: 2.0 }),
                (7, Transition::End { peak: 5.0 })
            ]
        );
    }

    #[test]
    fn every_frame_counts_with_min_and_hold_one() {
        let t = run(&[true, false, true], 1, 1);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn finish_closes_an_open_episode() {
        let mut e = Episodes::default();
        e.update(true, 3.0, 1, 1);
        assert_eq!(e.finish(), Some(Transition::End { peak: 3.0 }));
        assert_eq!(e.finish(), None);
    }
}
