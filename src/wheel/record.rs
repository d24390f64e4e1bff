//! RECORD ("Recording installed projects"): reading the wheel's own RECORD and
//! writing the installed one, byte-stable.

use std::collections::BTreeMap;

use sha2::Digest as _;

use crate::digest::Sha256Digest;
use crate::wheel::error::WheelError;

/// A hash from a RECORD row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordHash {
    /// `sha256=…`, the common case: copied into the installed RECORD as is.
    Sha256(Sha256Digest),
    /// `sha384=…` or `sha512=…`: checked once while planning, then re-hashed to sha256.
    Stronger {
        /// `sha384` or `sha512`.
        algorithm: &'static str,
        /// The raw digest.
        digest: Vec<u8>,
    },
}

impl RecordHash {
    /// A hasher for a `Stronger` algorithm.
    pub(crate) fn stronger_hasher(&self) -> Option<StrongerHasher> {
        match self {
            Self::Sha256(_) => None,
            Self::Stronger {
                algorithm: "sha384",
                ..
            } => Some(StrongerHasher::Sha384(sha2::Sha384::new())),
            Self::Stronger { .. } => Some(StrongerHasher::Sha512(sha2::Sha512::new())),
        }
    }

    /// The RECORD form (`algorithm=urlsafe-base64-nopad`).
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Sha256(digest) => digest.record(),
            Self::Stronger { algorithm, digest } => {
                format!(
                    "{algorithm}={}",
                    data_encoding::BASE64URL_NOPAD.encode(digest)
                )
            }
        }
    }
}

/// sha384 or sha512, for RECORD rows that use them.
pub(crate) enum StrongerHasher {
    /// sha384.
    Sha384(sha2::Sha384),
    /// sha512.
    Sha512(sha2::Sha512),
}

impl StrongerHasher {
    /// Feed bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha384(state) => state.update(bytes),
            Self::Sha512(state) => state.update(bytes),
        }
    }
    /// The raw digest.
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha384(state) => state.finalize().to_vec(),
            Self::Sha512(state) => state.finalize().to_vec(),
        }
    }
}

/// One row of the wheel's RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordRow {
    /// The hash, absent for RECORD itself (and, wrongly, for some files).
    pub(crate) hash: Option<RecordHash>,
    /// The size, when given.
    pub(crate) size: Option<u64>,
}

/// Parse a wheel's RECORD: CSV with `,` and `"`, rows `path,hash,size`.
pub(crate) fn parse(
    bytes: &[u8],
    wheel: &str,
    record_path: &str,
) -> Result<BTreeMap<String, RecordRow>, WheelError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = BTreeMap::new();
    for result in reader.records() {
        let record = result.map_err(|source| WheelError::MalformedRecord {
            wheel: wheel.to_string(),
            path: record_path.to_string(),
            source,
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != 3 {
            return Err(WheelError::RecordRowInvalid {
                wheel: wheel.to_string(),
                path: record_path.to_string(),
                line,
                fields: record.len(),
            });
        }
        let path = record[0].to_string();
        let hash = parse_hash(&record[1], wheel, &path)?;
        let size = match &record[2] {
            "" => None,
            text => Some(
                text.parse::<u64>()
                    .map_err(|_| WheelError::InvalidRecordSize {
                        wheel: wheel.to_string(),
                        path: path.clone(),
                        value: text.to_string(),
                    })?,
            ),
        };
        if rows
            .insert(path.clone(), RecordRow { hash, size })
            .is_some()
        {
            return Err(WheelError::DuplicateRecordEntry {
                wheel: wheel.to_string(),
                path,
            });
        }
    }
    Ok(rows)
}

/// "Recording installed projects": the hash is `<algorithm>=<urlsafe base64, no
/// padding>` with an algorithm from hashlib; the binary distribution format forbids
/// md5 and sha1, and envbuild also refuses sha224 (weaker than sha256).
fn parse_hash(field: &str, wheel: &str, path: &str) -> Result<Option<RecordHash>, WheelError> {
    if field.is_empty() {
        return Ok(None);
    }
    let invalid = || WheelError::InvalidRecordHash {
        wheel: wheel.to_string(),
        path: path.to_string(),
        value: field.to_string(),
    };
    let (algorithm, value) = field.split_once('=').ok_or_else(invalid)?;
    let value = value.trim_end_matches('=');
    match algorithm.to_ascii_lowercase().as_str() {
        "sha256" => Sha256Digest::from_record_base64(value)
            .map(|digest| Some(RecordHash::Sha256(digest)))
            .ok_or_else(invalid),
        name @ ("sha384" | "sha512") => {
            let digest = data_encoding::BASE64URL_NOPAD
                .decode(value.as_bytes())
                .map_err(|_| invalid())?;
            let (algorithm, length) = if name == "sha384" {
                ("sha384", 48)
            } else {
                ("sha512", 64)
            };
            if digest.len() != length {
                return Err(invalid());
            }
            Ok(Some(RecordHash::Stronger { algorithm, digest }))
        }
        "md5" | "sha1" | "sha224" => Err(WheelError::WeakRecordHash {
            wheel: wheel.to_string(),
            path: path.to_string(),
            algorithm: algorithm.to_string(),
        }),
        _ => Err(WheelError::UnknownRecordHashAlgorithm {
            wheel: wheel.to_string(),
            path: path.to_string(),
            algorithm: algorithm.to_string(),
        }),
    }
}

/// One row of the installed RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstalledRow {
    /// Path relative to site-packages, `/`-separated.
    pub(crate) path: String,
    /// sha256 and size; `None` only for RECORD itself.
    pub(crate) hash: Option<(Sha256Digest, u64)>,
}

/// Write the installed RECORD. Standards §3.6 and [envbuild]: rows sorted by path
/// bytes, `\n` line ends, RECORD itself as `path,,`, fields quoted exactly when
/// Python's `csv.writer` (QUOTE_MINIMAL) would.
pub(crate) fn write(mut rows: Vec<InstalledRow>) -> Vec<u8> {
    rows.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut out = String::new();
    for row in rows {
        out.push_str(&csv_field(&row.path));
        match row.hash {
            Some((digest, size)) => {
                out.push(',');
                out.push_str(&digest.record());
                out.push(',');
                out.push_str(&size.to_string());
            }
            None => out.push_str(",,"),
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// CPython `_csv.c`: with QUOTE_MINIMAL a field is quoted when it holds the delimiter,
/// the quote character, `\r` or `\n`; quotes inside are doubled.
fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_parse_quoted_and_crlf() {
        let digest = Sha256Digest::of(b"x");
        let text = format!(
            "\"a,b.py\",{},1\r\npkg/x.dist-info/RECORD,,\r\n",
            digest.record()
        );
        let rows = parse(text.as_bytes(), "w.whl", "RECORD").unwrap();
        assert_eq!(rows["a,b.py"].hash, Some(RecordHash::Sha256(digest)));
        assert_eq!(rows["a,b.py"].size, Some(1));
        assert_eq!(rows["pkg/x.dist-info/RECORD"].hash, None);
    }

    #[test]
    fn err_record_md5() {
        let error = parse(b"a.py,md5=abc,1\n", "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::WeakRecordHash { .. }),
            "{error}"
        );
        let error = parse(b"a.py,sha1=abc,1\n", "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::WeakRecordHash { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_record_bad_rows() {
        let error = parse(b"a.py,sha256=abc\n", "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::RecordRowInvalid { fields: 2, .. }),
            "{error}"
        );
        let error = parse(b"a.py,sha256=abc,1\n", "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::InvalidRecordHash { .. }),
            "{error}"
        );
        let row = format!("a.py,{},x\n", Sha256Digest::of(b"").record());
        let error = parse(row.as_bytes(), "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::InvalidRecordSize { .. }),
            "{error}"
        );
        let twice = format!("{row}{row}").replace(",x", ",0");
        let error = parse(twice.as_bytes(), "w.whl", "RECORD").unwrap_err();
        assert!(
            matches!(error, WheelError::DuplicateRecordEntry { .. }),
            "{error}"
        );
    }

    #[test]
    fn write_sorts_and_quotes_like_python() {
        let digest = Sha256Digest::of(b"");
        let rows = vec![
            InstalledRow {
                path: "z.py".into(),
                hash: Some((digest, 0)),
            },
            InstalledRow {
                path: "x.dist-info/RECORD".into(),
                hash: None,
            },
            InstalledRow {
                path: "../../../bin/a".into(),
                hash: Some((digest, 0)),
            },
            InstalledRow {
                path: "we,ird\"name".into(),
                hash: Some((digest, 0)),
            },
        ];
        let text = String::from_utf8(write(rows)).unwrap();
        let hash = digest.record();
        assert_eq!(
            text,
            format!(
                "../../../bin/a,{hash},0\n\"we,ird\"\"name\",{hash},0\nx.dist-info/RECORD,,\nz.py,{hash},0\n"
            )
        );
    }

    /// RECORD texts to mutate: one a wheel builder writes, and rows with quoting, CRLF,
    /// stronger hashes and empty fields.
    fn seeds() -> Vec<Vec<u8>> {
        use crate::wheel::testing::members;
        let built = members(&[
            ("demo/__init__.py", b"x = 1\n", 0o644),
            ("demo/a,b.py", b"q", 0o644),
            ("demo-1.0.data/scripts/tool", b"#!python\n", 0o755),
        ]);
        let record = built.last().expect("RECORD is last").bytes.clone();
        let sha512 = data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha512::digest(b"x"));
        vec![
            record,
            format!(
                "\"we,ird\"\"name\",{},1\r\nbig.py,sha512={sha512},1\r\nx/RECORD,,\r\n",
                Sha256Digest::of(b"x").record()
            )
            .into_bytes(),
            b"a.py,md5=abc,1\nb.py,,\n\"unterminated,sha256=,\n".to_vec(),
        ]
    }

    /// No input makes the RECORD parser panic, and every error is one printable line.
    #[test]
    fn ok_no_panic_on_mutated_records() {
        use proptest::prelude::*;

        use crate::wheel::testing::mutate;

        let seeds = seeds();
        let inputs = prop_oneof![
            4 => (proptest::sample::select(seeds), mutate::mutations(6))
                .prop_map(|(seed, mutations)| mutate::apply(seed, &mutations)),
            1 => proptest::collection::vec(any::<u8>(), 0..512),
        ];
        proptest::test_runner::TestRunner::new(mutate::config(4000, 0x5eed_0001))
            .run(&inputs, |bytes| {
                match parse(
                    &bytes,
                    "demo-1.0-py3-none-any.whl",
                    "demo-1.0.dist-info/RECORD",
                ) {
                    Ok(rows) => {
                        for row in rows.values() {
                            if let Some(hash) = &row.hash {
                                prop_assert!(!hash.render().is_empty());
                            }
                        }
                    }
                    Err(error) => prop_assert!(mutate::printable(&error.to_string()), "{error}"),
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn err_control_characters_in_record_paths_are_escaped() {
        let error = parse(b"\"\x1b[2Jevil\nline\",md5=x,1\n", "w.whl", "RECORD").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`\\u{1b}[2Jevil\\nline`"), "{message}");
    }
}
