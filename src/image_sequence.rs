//! Numbered image files on disk (`shot/%04d.png`, `shot/####.exr`, or a folder holding one numbered sequence),
//! as `svd-inbetween sequence` reads and writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A numbered PNG/EXR sequence: `<dir>/<prefix><number><suffix>`, the numbers zero-padded to `pad` digits
/// (0: not padded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSequence {
    pub dir: PathBuf,
    pub prefix: String,
    pub suffix: String,
    pub pad: usize,
    /// The files found, by frame number.
    pub frames: BTreeMap<i64, PathBuf>,
}

/// A file name pattern split at its frame-number placeholder.
#[derive(Debug, PartialEq, Eq)]
struct Pattern {
    prefix: String,
    suffix: String,
    /// `Some(n)`: exactly n digits (`%04d`, `####`); `None`: any number of digits (`%d`).
    width: Option<usize>,
}

fn parse_pattern(name: &str) -> Option<Pattern> {
    if let Some(at) = name.find('%') {
        let rest = &name[at + 1..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after = &rest[digits.len()..];
        let suffix = after.strip_prefix('d')?;
        let width = match digits.parse::<usize>() {
            Ok(w) if w > 0 => Some(w),
            _ => None,
        };
        return Some(Pattern {
            prefix: name[..at].into(),
            suffix: suffix.into(),
            width,
        });
    }
    let at = name.find('#')?;
    let n = name[at..].chars().take_while(|&c| c == '#').count();
    Some(Pattern {
        prefix: name[..at].into(),
        suffix: name[at + n..].into(),
        width: Some(n),
    })
}

fn is_image_suffix(suffix: &str) -> bool {
    let s = suffix.to_ascii_lowercase();
    s.ends_with(".png") || s.ends_with(".exr")
}

/// `(prefix, digits, suffix)` of a file name whose stem ends in a number: `shot_0012.png` → ("shot_", "0012", ".png").
fn split_numbered(name: &str) -> Option<(&str, &str, &str)> {
    let dot = name.rfind('.')?;
    let (stem, suffix) = name.split_at(dot);
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let (prefix, number) = stem.split_at(stem.len() - digits);
    Some((prefix, number, suffix))
}

impl ImageSequence {
    /// Opens `input`: a pattern (`dir/name_%04d.png`, `dir/name_####.png`, `%d` unpadded) or a folder holding
    /// exactly one numbered PNG/EXR sequence. Finding no frame is an error; gaps are the caller's business.
    pub fn open(input: &Path) -> Result<Self, String> {
        if input.is_dir() {
            return Self::from_folder(input);
        }
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(p) = parse_pattern(&name) else {
            return Err(format!(
                "--input {}: neither a folder nor a pattern with a frame number placeholder (e.g. shot/%04d.png or shot/####.png)",
                input.display()
            ));
        };
        if !is_image_suffix(&p.suffix) {
            return Err(format!(
                "--input {}: frames must be .png or .exr files",
                input.display()
            ));
        }
        let dir = match input.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            format!(
                "--input {}: cannot list {}: {e}",
                input.display(),
                dir.display()
            )
        })?;
        let mut frames = BTreeMap::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(number) = file
                .strip_prefix(&p.prefix)
                .and_then(|r| r.strip_suffix(&p.suffix))
            else {
                continue;
            };
            let digits_ok = !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && p.width.is_none_or(|w| number.len() == w);
            if let (true, Ok(n)) = (digits_ok, number.parse::<i64>()) {
                frames.insert(n, dir.join(&file));
            }
        }
        if frames.is_empty() {
            return Err(format!(
                "--input {}: no frames match in {}",
                input.display(),
                dir.display()
            ));
        }
        Ok(Self {
            dir,
            prefix: p.prefix,
            suffix: p.suffix,
            pad: p.width.unwrap_or(0),
            frames,
        })
    }

    fn from_folder(dir: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("--input {}: cannot list it: {e}", dir.display()))?;
        // (prefix, suffix) → (number → (file, digit count))
        let mut groups: BTreeMap<(String, String), BTreeMap<i64, (PathBuf, usize)>> =
            BTreeMap::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some((prefix, digits, suffix)) = split_numbered(&file) else {
                continue;
            };
            if !is_image_suffix(suffix) || !e.path().is_file() {
                continue;
            }
            let Ok(n) = digits.parse::<i64>() else {
                continue;
            };
            groups
                .entry((prefix.into(), suffix.into()))
                .or_default()
                .insert(n, (dir.join(&file), digits.len()));
        }
        let mut groups = groups.into_iter();
        let Some(((prefix, suffix), files)) = groups.next() else {
            return Err(format!(
                "--input {}: the folder holds no numbered .png or .exr frames",
                dir.display()
            ));
        };
        if let Some(((p2, s2), _)) = groups.next() {
            return Err(format!(
                "--input {}: the folder holds more than one numbered sequence ({prefix}#{suffix}, {p2}#{s2}, …); pass a pattern such as {}",
                dir.display(),
                dir.join(format!("{prefix}%04d{suffix}")).display()
            ));
        }
        // Zero-padded when every name has the same number of digits and one of them has a leading zero.
        let widths: Vec<usize> = files.values().map(|(_, w)| *w).collect();
        let same = widths.iter().all(|w| *w == widths[0]);
        let padded = same && files.iter().any(|(n, (_, w))| n.to_string().len() < *w);
        Ok(Self {
            dir: dir.to_path_buf(),
            prefix,
            suffix,
            pad: if padded { widths[0] } else { 0 },
            frames: files.into_iter().map(|(n, (p, _))| (n, p)).collect(),
        })
    }

    pub fn first(&self) -> i64 {
        *self.frames.keys().next().expect("a sequence has frames")
    }

    pub fn last(&self) -> i64 {
        *self
            .frames
            .keys()
            .next_back()
            .expect("a sequence has frames")
    }

    pub fn path(&self, n: i64) -> Option<&Path> {
        self.frames.get(&n).map(PathBuf::as_path)
    }

    /// The file name frame `n` has (or would have) in this sequence's naming, with extension `ext` (".png").
    pub fn file_name(&self, n: i64, ext: &str) -> String {
        let stem_suffix = match self.suffix.rfind('.') {
            Some(dot) => &self.suffix[..dot],
            None => "",
        };
        format!("{}{n:0pad$}{stem_suffix}{ext}", self.prefix, pad = self.pad)
    }

    /// The files' extension with its dot (".png").
    pub fn ext(&self) -> &str {
        self.suffix.rfind('.').map_or("", |dot| &self.suffix[dot..])
    }

    /// Whether the frames are OpenEXR (scene-linear) rather than PNG (display-referred).
    pub fn is_linear(&self) -> bool {
        self.suffix.to_ascii_lowercase().ends_with(".exr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("shot_%04d.png"),
            Some(Pattern {
                prefix: "shot_".into(),
                suffix: ".png".into(),
                width: Some(4)
            })
        );
        assert_eq!(parse_pattern("%d.exr").unwrap().width, None);
        assert_eq!(
            parse_pattern("a.####.png"),
            Some(Pattern {
                prefix: "a.".into(),
                suffix: ".png".into(),
                width: Some(4)
            })
        );
        assert_eq!(parse_pattern("plain.png"), None);
        assert_eq!(parse_pattern("bad%s.png"), None);
        assert_eq!(
            split_numbered("shot_0012.png"),
            Some(("shot_", "0012", ".png"))
        );
        assert_eq!(split_numbered("notes.txt"), None);
    }

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), b"").unwrap();
        }
    }

    #[test]
    fn a_pattern_finds_its_frames_and_names_outputs_alike() {
        let d = tempfile::tempdir().unwrap();
        touch(
            d.path(),
            &[
                "0000.png", "0012.png", "0024.png", "12.png", "x.png", "0001.exr",
            ],
        );
        let s = ImageSequence::open(&d.path().join("%04d.png")).unwrap();
        assert_eq!(
            s.frames.keys().copied().collect::<Vec<_>>(),
            vec![0, 12, 24]
        );
        assert_eq!((s.first(), s.last()), (0, 24));
        assert_eq!(s.file_name(7, ".exr"), "0007.exr");
        assert!(!s.is_linear());
        let s = ImageSequence::open(&d.path().join("####.exr")).unwrap();
        assert_eq!(s.frames.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(s.is_linear());
        let e = ImageSequence::open(&d.path().join("%04d.jpg")).unwrap_err();
        assert!(e.ends_with("frames must be .png or .exr files"), "{e}");
        let e = ImageSequence::open(&d.path().join("y_%04d.png")).unwrap_err();
        assert!(e.contains("no frames match"), "{e}");
    }

    #[test]
    fn a_folder_must_hold_one_sequence() {
        let d = tempfile::tempdir().unwrap();
        touch(
            d.path(),
            &["f_001.png", "f_002.png", "f_010.png", "readme.txt"],
        );
        let s = ImageSequence::open(d.path()).unwrap();
        assert_eq!(
            (s.prefix.as_str(), s.suffix.as_str(), s.pad),
            ("f_", ".png", 3)
        );
        assert_eq!(s.frames.len(), 3);
        assert_eq!(s.file_name(5, ".png"), "f_005.png");
        touch(d.path(), &["g_001.png"]);
        let e = ImageSequence::open(d.path()).unwrap_err();
        assert!(e.contains("more than one numbered sequence"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = ImageSequence::open(empty.path()).unwrap_err();
        assert!(e.contains("no numbered .png or .exr frames"), "{e}");
    }
}
