//! Whole clips (DESIGN §6): which frames are keyframes, and which interval k_i < t < k_{i+1} an output time
//! falls in. Pure functions, shared by the plugin and `svd-inbetween sequence`, so both find the same intervals.

use std::fmt;

/// Frame numbers on the clip's (or sequence's) own timeline.
pub type FrameNumber = i64;

/// Why a keyframe set cannot be used; the text says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyframeError {
    #[error(
        "keyframe list: '{0}' is not a frame number (write whole frame numbers separated by commas or spaces, e.g. 0, 12, 30, 48)"
    )]
    BadToken(String),
    #[error("keyframes every {0} frames: N must be at least 2")]
    EveryTooSmall(i64),
    #[error("{0}")]
    TooFew(TooFew),
    #[error(
        "keyframe {key} is outside {what}'s frames {first}–{last}: keep the keyframes inside {what}"
    )]
    Outside {
        key: FrameNumber,
        what: &'static str,
        first: FrameNumber,
        last: FrameNumber,
    },
}

/// Fewer than two keyframes: there is no interval to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooFew {
    pub found: Vec<FrameNumber>,
    pub what: &'static str,
    pub first: FrameNumber,
    pub last: FrameNumber,
}

impl fmt::Display for TooFew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found = match self.found.as_slice() {
            [] => "none".to_string(),
            [k] => format!("only {k}"),
            _ => unreachable!("two or more keyframes are enough"),
        };
        write!(
            f,
            "fewer than two keyframes in {}'s frames {}–{} ({found}): give at least two keyframes inside it",
            self.what, self.first, self.last
        )
    }
}

/// Parses a keyframe list such as `0, 12, 30, 48` (commas and/or whitespace between whole numbers) into sorted,
/// de-duplicated frame numbers. An empty list is `Ok(vec![])`; the caller decides that two are needed.
pub fn parse_list(text: &str) -> Result<Vec<FrameNumber>, KeyframeError> {
    let mut keys = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|tok| !tok.is_empty())
        .map(|tok| {
            tok.parse::<FrameNumber>()
                .map_err(|_| KeyframeError::BadToken(tok.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Keyframes at `offset + k·n` (any integer k) inside `first..=last`. `n` < 2 is an error: every frame a
/// keyframe leaves nothing to fill.
pub fn every(
    n: i64,
    offset: i64,
    first: FrameNumber,
    last: FrameNumber,
) -> Result<Vec<FrameNumber>, KeyframeError> {
    if n < 2 {
        return Err(KeyframeError::EveryTooSmall(n));
    }
    if last < first {
        return Ok(vec![]);
    }
    // The first k with offset + k·n ≥ first.
    let k0 = (first - offset).div_euclid(n) + i64::from((first - offset).rem_euclid(n) != 0);
    Ok((k0..)
        .map(|k| offset + k * n)
        .take_while(|&key| key <= last)
        .collect())
}

/// Checks that `keys` (sorted) are at least two and all lie in `first..=last`; `what` names the frames
/// ("the clip", "the input sequence") in the error.
pub fn check_inside(
    keys: &[FrameNumber],
    what: &'static str,
    first: FrameNumber,
    last: FrameNumber,
) -> Result<(), KeyframeError> {
    if let Some(&key) = keys.iter().find(|&&k| k < first || k > last) {
        return Err(KeyframeError::Outside {
            key,
            what,
            first,
            last,
        });
    }
    if keys.len() < 2 {
        return Err(KeyframeError::TooFew(TooFew {
            found: keys.to_vec(),
            what,
            first,
            last,
        }));
    }
    Ok(())
}

/// The interval (k_i, k_{i+1}) of consecutive keyframes with k_i < t < k_{i+1}; `None` at a keyframe and
/// before the first or after the last (identity: the source passes through).
pub fn interval_for_time(keys: &[FrameNumber], t: f64) -> Option<(FrameNumber, FrameNumber)> {
    // First keyframe strictly after t.
    let i = keys.partition_point(|&k| (k as f64) <= t);
    if i == 0 || i == keys.len() {
        return None;
    }
    let (a, b) = (keys[i - 1], keys[i]);
    ((a as f64) < t).then_some((a, b))
}

/// Consecutive keyframe pairs: the intervals to generate, in order.
pub fn intervals(keys: &[FrameNumber]) -> Vec<(FrameNumber, FrameNumber)> {
    keys.windows(2).map(|w| (w[0], w[1])).collect()
}

/// How an interval is named to the user (progress bars, logs, summary.json): "frames 24–48".
pub fn interval_label((a, b): (FrameNumber, FrameNumber)) -> String {
    format!("frames {a}–{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_sorted_and_deduplicated() {
        assert_eq!(parse_list("0, 12, 30, 48").unwrap(), vec![0, 12, 30, 48]);
        assert_eq!(
            parse_list(" 30 12,,0\t12\n48 ").unwrap(),
            vec![0, 12, 30, 48]
        );
        assert_eq!(parse_list("-5,3").unwrap(), vec![-5, 3]);
        assert_eq!(parse_list("").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_list(" , ").unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn a_bad_token_is_named() {
        assert_eq!(
            parse_list("0, 12, x3, 48"),
            Err(KeyframeError::BadToken("x3".into()))
        );
        assert_eq!(
            parse_list("0;12"),
            Err(KeyframeError::BadToken("0;12".into()))
        );
        assert_eq!(
            parse_list("1.5").unwrap_err().to_string(),
            "keyframe list: '1.5' is not a frame number (write whole frame numbers separated by commas or spaces, e.g. 0, 12, 30, 48)"
        );
    }

    #[test]
    fn every_n_with_offset_is_bounded_by_the_range() {
        assert_eq!(every(12, 0, 0, 48).unwrap(), vec![0, 12, 24, 36, 48]);
        assert_eq!(every(12, 0, 0, 47).unwrap(), vec![0, 12, 24, 36]);
        assert_eq!(every(12, 5, 0, 48).unwrap(), vec![5, 17, 29, 41]);
        assert_eq!(every(12, -7, 0, 48).unwrap(), vec![5, 17, 29, 41]);
        assert_eq!(every(12, 100, 0, 48).unwrap(), vec![4, 16, 28, 40]);
        assert_eq!(every(24, 0, 10, 100).unwrap(), vec![24, 48, 72, 96]);
        assert_eq!(every(2, 0, 3, 3).unwrap(), Vec::<i64>::new());
        assert_eq!(every(1, 0, 0, 48), Err(KeyframeError::EveryTooSmall(1)));
        assert_eq!(
            every(0, 0, 0, 48).unwrap_err().to_string(),
            "keyframes every 0 frames: N must be at least 2"
        );
    }

    #[test]
    fn keyframes_must_be_two_and_inside() {
        assert!(check_inside(&[0, 48], "the clip", 0, 48).is_ok());
        assert_eq!(
            check_inside(&[0, 12, 60], "the clip", 0, 48)
                .unwrap_err()
                .to_string(),
            "keyframe 60 is outside the clip's frames 0–48: keep the keyframes inside the clip"
        );
        assert_eq!(
            check_inside(&[7], "the clip", 0, 48)
                .unwrap_err()
                .to_string(),
            "fewer than two keyframes in the clip's frames 0–48 (only 7): give at least two keyframes inside it"
        );
        assert_eq!(
            check_inside(&[], "the input sequence", 1, 9)
                .unwrap_err()
                .to_string(),
            "fewer than two keyframes in the input sequence's frames 1–9 (none): give at least two keyframes inside it"
        );
    }

    #[test]
    fn the_interval_of_a_time() {
        let keys = [0, 12, 30, 48];
        assert_eq!(interval_for_time(&keys, 0.0), None, "at a keyframe");
        assert_eq!(interval_for_time(&keys, 1.0), Some((0, 12)));
        assert_eq!(interval_for_time(&keys, 11.5), Some((0, 12)));
        assert_eq!(interval_for_time(&keys, 12.0), None);
        assert_eq!(interval_for_time(&keys, 13.0), Some((12, 30)));
        assert_eq!(interval_for_time(&keys, 47.0), Some((30, 48)));
        assert_eq!(interval_for_time(&keys, 48.0), None);
        assert_eq!(interval_for_time(&keys, 49.0), None, "after the last");
        assert_eq!(interval_for_time(&keys, -1.0), None, "before the first");
        assert_eq!(interval_for_time(&[5], 5.5), None);
        assert_eq!(interval_for_time(&[], 5.5), None);
        assert_eq!(intervals(&keys), vec![(0, 12), (12, 30), (30, 48)]);
        assert_eq!(interval_label((24, 48)), "frames 24–48");
    }
}
